package transparency

// MemoryTree is a log held in memory: the stored nodes of every appended
// leaf. It is a HashReader for proofs and roots; tests, benchmarks and
// auditors that hold a whole log use it.
type MemoryTree struct {
	levels [][]Hash // levels[l][i] is NodeID{l, i}
	size   uint64
}

// Size returns the number of leaves.
func (t *MemoryTree) Size() uint64 { return t.size }

// ReadHashes implements HashReader.
func (t *MemoryTree) ReadHashes(ids []NodeID) ([]Hash, error) {
	out := make([]Hash, len(ids))
	for i, id := range ids {
		if int(id.Level) >= len(t.levels) || id.Index >= uint64(len(t.levels[id.Level])) {
			return nil, ErrSize
		}
		out[i] = t.levels[id.Level][id.Index]
	}
	return out, nil
}

// AppendLeaf appends a leaf (its raw bytes; the tree hashes it).
func (t *MemoryTree) AppendLeaf(leaf []byte) error { return t.AppendHash(LeafHash(leaf)) }

// AppendHash appends a leaf given its leaf hash.
func (t *MemoryTree) AppendHash(leafHash Hash) error {
	nodes, err := NewNodes(t, t.size, leafHash)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		for int(n.ID.Level) >= len(t.levels) {
			t.levels = append(t.levels, nil)
		}
		t.levels[n.ID.Level] = append(t.levels[n.ID.Level], n.Hash)
	}
	t.size++
	return nil
}

// Root returns the root hash of the first size leaves.
func (t *MemoryTree) Root(size uint64) (Hash, error) {
	if size > t.size {
		return Hash{}, ErrSize
	}
	return RootHash(t, size)
}
