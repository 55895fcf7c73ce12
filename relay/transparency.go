package relay

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"

	"sotto/transparency"
	"sotto/wire"
)

// KeyLog is the storage of the key transparency log (DESIGN §5): every
// (username, identity key) binding, as an append-only Merkle log. A
// Directory that keeps one appends NewAccount.LogLeaf in Enroll's own
// transaction, so an account never exists without its binding.
//
// Semantics every backend must have (see storetest.RunKeyLog):
//   - leaves are numbered from 0 in commit order, never changed or reused;
//   - the stored nodes are those transparency.NewNodes returns;
//   - LogSize counts committed leaves; every leaf and node below it can be
//     read, and never changes.
type KeyLog interface {
	LogSize(ctx context.Context) (uint64, error)
	LogHashes(ctx context.Context, ids []transparency.NodeID) ([]transparency.Hash, error)
	// LogLeaves returns the leaves [start, start+count) that exist.
	LogLeaves(ctx context.Context, start uint64, count int) ([][]byte, error)
	// LogLeafIndex returns the index of the newest leaf naming username, or
	// ErrNotFound.
	LogLeafIndex(ctx context.Context, username string) (uint64, error)
	// AppendLogLeaf appends one leaf in a transaction of its own (for
	// bindings made outside Enroll and for backfilling accounts older than
	// the log).
	AppendLogLeaf(ctx context.Context, username string, leaf []byte) (uint64, error)
}

// LogTx is what a backend gives AppendLog inside one of its transactions.
// LogSize must hold a lock that serializes appends until the transaction
// ends.
type LogTx interface {
	LogSize(ctx context.Context) (uint64, error)
	LogHashes(ctx context.Context, ids []transparency.NodeID) ([]transparency.Hash, error)
	InsertLogLeaf(ctx context.Context, index uint64, username string, leaf []byte, nodes []transparency.Node) error
}

// AppendLog appends leaf as the next leaf of the log in tx and returns its
// index. Backends call it from Enroll and AppendLogLeaf.
func AppendLog(ctx context.Context, tx LogTx, username string, leaf []byte) (uint64, error) {
	n, err := tx.LogSize(ctx)
	if err != nil {
		return 0, err
	}
	nodes, err := transparency.NewNodes(ctxHashes{ctx, tx.LogHashes}, n, transparency.LeafHash(leaf))
	if err != nil {
		return 0, err
	}
	if err := tx.InsertLogLeaf(ctx, n, username, leaf, nodes); err != nil {
		return 0, err
	}
	return n, nil
}

// ctxHashes adapts a context-taking hash reader to transparency.HashReader.
type ctxHashes struct {
	ctx  context.Context
	read func(context.Context, []transparency.NodeID) ([]transparency.Hash, error)
}

func (r ctxHashes) ReadHashes(ids []transparency.NodeID) ([]transparency.Hash, error) {
	return r.read(r.ctx, ids)
}

// maxLogLeaves caps one TransparencyLeaves answer.
const maxLogLeaves = 1000

// keyLog serves the log: it signs heads and builds proofs.
type keyLog struct {
	store KeyLog
	key   ed25519.PrivateKey
	now   func() int64 // Unix ms

	mu   sync.Mutex
	head transparency.SignedHead // the newest head signed, for its size
	enc  []byte
	wit  witnessed // the newest head the witness co-signed (witness.go)
	// grew is signalled when a head of a new size is signed, for the
	// witness submitter (witness.go).
	grew chan struct{}
}

func (s *Server) initKeyLog() error {
	if s.cfg.LogKey == nil {
		return nil
	}
	kl, ok := s.cfg.Directory.(KeyLog)
	if !ok {
		return errors.New("relay: config: LogKey is set but the Directory keeps no key log")
	}
	if len(s.cfg.LogKey) != ed25519.PrivateKeySize {
		return errors.New("relay: config: LogKey is not an Ed25519 private key")
	}
	s.klog = &keyLog{store: kl, key: s.cfg.LogKey, now: func() int64 { return s.cfg.Now().UnixMilli() }, grew: make(chan struct{}, 1)}
	return nil
}

// logPublicKey is what enrollment hands the client to pin (nil: no log).
func (s *Server) logPublicKey() []byte {
	if s.klog == nil {
		return nil
	}
	return s.klog.key.Public().(ed25519.PublicKey)
}

// logLeaf encodes the binding Enroll appends (nil: no log).
func (s *Server) logLeaf(username string, identityKey, cert []byte) ([]byte, error) {
	if s.klog == nil {
		return nil, nil
	}
	b := transparency.Binding{Kind: transparency.KindAdd, Username: username, IdentityKey: identityKey, TimestampMS: s.cfg.Now().UnixMilli(),
		Certificate: cert}
	return b.Encode()
}

// backfillKeyLog appends a binding for every account that has none: the
// accounts enrolled before the relay kept a log.
func (s *Server) backfillKeyLog(ctx context.Context) error {
	if s.klog == nil {
		return nil
	}
	accts, err := s.dir.Accounts(ctx)
	if err != nil {
		return fmt.Errorf("relay: key log backfill: %w", err)
	}
	added := 0
	for _, a := range accts {
		if _, err := s.klog.store.LogLeafIndex(ctx, a.Username); err == nil {
			continue
		} else if !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("relay: key log backfill: %w", err)
		}
		leaf, err := s.logLeaf(a.Username, a.IdentityKey, nil)
		if err != nil {
			return fmt.Errorf("relay: key log backfill: %w", err)
		}
		if _, err := s.klog.store.AppendLogLeaf(ctx, a.Username, leaf); err != nil {
			return fmt.Errorf("relay: key log backfill: %w", err)
		}
		added++
	}
	if added > 0 {
		s.log.Info("key log: added bindings of existing accounts", "count", added)
	}
	return nil
}

// signedHead returns the newest head, signing it when the log has grown.
func (k *keyLog) signedHead(ctx context.Context) (transparency.SignedHead, []byte, error) {
	size, err := k.store.LogSize(ctx)
	if err != nil {
		return transparency.SignedHead{}, nil, err
	}
	k.mu.Lock()
	if k.enc != nil && k.head.Size == size {
		h, enc := k.head, k.enc
		k.mu.Unlock()
		return h, enc, nil
	}
	k.mu.Unlock()
	root, err := transparency.RootHash(k.reader(ctx), size)
	if err != nil {
		return transparency.SignedHead{}, nil, err
	}
	h := transparency.SignHead(k.key, size, root, k.now())
	enc := h.Encode()
	k.mu.Lock()
	if k.enc == nil || size >= k.head.Size {
		k.head, k.enc = h, enc
	}
	k.mu.Unlock()
	select {
	case k.grew <- struct{}{}:
	default:
	}
	return h, enc, nil
}

func (k *keyLog) reader(ctx context.Context) transparency.HashReader {
	return ctxHashes{ctx, k.store.LogHashes}
}

// proof proves leaf index (or the newest leaf of username) against the
// newest head, and that head's consistency with knownSize.
func (k *keyLog) proof(ctx context.Context, username string, index, knownSize uint64) (*wire.TransparencyProof, error) {
	var err error
	if username != "" {
		// Before the head: a leaf appended meanwhile is then inside it.
		if index, err = k.store.LogLeafIndex(ctx, username); err != nil {
			return nil, err
		}
	}
	head, enc, err := k.signedHead(ctx)
	if err != nil {
		return nil, err
	}
	if index >= head.Size {
		return nil, fmt.Errorf("%w: no leaf %d", ErrNotFound, index)
	}
	if knownSize > head.Size {
		return nil, badRequest("known size %d is beyond the log's %d", knownSize, head.Size)
	}
	leaves, err := k.store.LogLeaves(ctx, index, 1)
	if err != nil {
		return nil, err
	}
	if len(leaves) != 1 {
		return nil, fmt.Errorf("relay: key log: leaf %d missing", index)
	}
	r := k.reader(ctx)
	incl, err := transparency.InclusionProof(r, index, head.Size)
	if err != nil {
		return nil, err
	}
	cons, err := transparency.ConsistencyProof(r, knownSize, head.Size)
	if err != nil {
		return nil, err
	}
	return &wire.TransparencyProof{SignedHead: enc, LeafIndex: index, Leaf: leaves[0],
		Inclusion: transparency.EncodeProof(incl), KnownSize: knownSize, Consistency: transparency.EncodeProof(cons),
		Cosignatures: k.cosigsFor(head)}, nil
}

// lookupProof is the proof attached to an identity or prekey lookup (nil
// when the relay keeps no log).
func (c *conn) lookupProof(username string, knownSize uint64) (*wire.TransparencyProof, error) {
	if c.s.klog == nil {
		return nil, nil
	}
	p, err := c.s.klog.proof(c.ctx, username, 0, knownSize)
	if errors.Is(err, ErrNotFound) {
		// Served without a proof: a client that pinned the log refuses it.
		c.s.log.Warn("key log: no binding for an account", "username", username)
		return nil, nil
	}
	return p, err
}

// transparencyRoutes are the key transparency requests (authenticated).
func transparencyRoutes() []route {
	return []route{
		{&wire.Request_TransparencyHead{}, authedOnly, withKeyLog((*conn).transparencyHead)},
		{&wire.Request_TransparencyInclusion{}, authedOnly, withKeyLog((*conn).transparencyInclusion)},
		{&wire.Request_TransparencyConsistency{}, authedOnly, withKeyLog((*conn).transparencyConsistency)},
		{&wire.Request_TransparencyLeaves{}, authedOnly, withKeyLog((*conn).transparencyLeaves)},
	}
}

// withKeyLog refuses the request when the relay keeps no key log.
func withKeyLog(h func(c *conn, k *keyLog, req *wire.Request, resp *wire.Response) error) handler {
	return func(c *conn, req *wire.Request, resp *wire.Response) error {
		k := c.s.klog
		if k == nil {
			return fmt.Errorf("%w: this relay keeps no key transparency log", ErrUnavailable)
		}
		return h(c, k, req, resp)
	}
}

func (c *conn) transparencyHead(k *keyLog, _ *wire.Request, resp *wire.Response) error {
	head, enc, err := k.signedHead(c.ctx)
	if err != nil {
		return err
	}
	wenc, wcosigs := k.witnessedHead()
	resp.Body = &wire.Response_TransparencyHead{TransparencyHead: &wire.TransparencyHead{SignedHead: enc,
		Cosignatures: k.cosigsFor(head), WitnessedHead: wenc, WitnessedCosignatures: wcosigs}}
	return nil
}

func (c *conn) transparencyInclusion(k *keyLog, req *wire.Request, resp *wire.Response) error {
	r := req.GetTransparencyInclusion()
	user := r.GetUsername()
	if user != "" {
		var err error
		if user, err = NormalizeUsername(user); err != nil {
			return err
		}
	}
	p, err := k.proof(c.ctx, user, r.GetLeafIndex(), r.GetKnownSize())
	if err != nil {
		return err
	}
	resp.Body = &wire.Response_TransparencyInclusion{TransparencyInclusion: p}
	return nil
}

func (c *conn) transparencyConsistency(k *keyLog, req *wire.Request, resp *wire.Response) error {
	r := req.GetTransparencyConsistency()
	head, enc, err := k.signedHead(c.ctx)
	if err != nil {
		return err
	}
	second := r.GetSecond()
	if second == 0 {
		second = head.Size
	}
	if second > head.Size || r.GetFirst() > second {
		return badRequest("sizes %d..%d outside the log's %d", r.GetFirst(), second, head.Size)
	}
	p, err := transparency.ConsistencyProof(k.reader(c.ctx), r.GetFirst(), second)
	if err != nil {
		return err
	}
	resp.Body = &wire.Response_TransparencyConsistency{TransparencyConsistency: &wire.TransparencyConsistency{
		First: r.GetFirst(), Second: second, Proof: transparency.EncodeProof(p), SignedHead: enc,
		Cosignatures: k.cosigsFor(head)}}
	return nil
}

func (c *conn) transparencyLeaves(k *keyLog, req *wire.Request, resp *wire.Response) error {
	r := req.GetTransparencyLeaves()
	head, enc, err := k.signedHead(c.ctx)
	if err != nil {
		return err
	}
	out := &wire.TransparencyLeaves{Start: r.GetStart(), SignedHead: enc, Cosignatures: k.cosigsFor(head)}
	if r.GetStart() < head.Size {
		n := min(uint64(min(r.GetCount(), maxLogLeaves)), head.Size-r.GetStart())
		if out.Leaves, err = k.store.LogLeaves(c.ctx, r.GetStart(), int(n)); err != nil {
			return err
		}
	}
	resp.Body = &wire.Response_TransparencyLeaves{TransparencyLeaves: out}
	return nil
}
