package transparency

import "crypto/subtle"

func equal(a, b Hash) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }

// VerifyInclusion checks that leafHash is leaf number index of the tree of
// size leaves with the given root, following RFC 9162 §2.1.3.2 step by step.
func VerifyInclusion(leafHash Hash, index, size uint64, proof []Hash, root Hash) error {
	if index >= size || len(proof) > MaxProofLen {
		return ErrProof
	}
	fn, sn := index, size-1
	r := leafHash
	for _, p := range proof {
		if sn == 0 {
			return ErrProof
		}
		if fn&1 == 1 || fn == sn {
			r = NodeHash(p, r)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			r = NodeHash(r, p)
		}
		fn >>= 1
		sn >>= 1
	}
	if sn != 0 || !equal(r, root) {
		return ErrProof
	}
	return nil
}

// VerifyConsistency checks that the tree of size second with root
// secondRoot extends the tree of size first with root firstRoot, following
// RFC 9162 §2.1.4.2 step by step for 0 < first < second. For first ==
// second the proof must be empty and the roots equal; for first == 0 the
// proof must be empty (every tree extends the empty tree).
func VerifyConsistency(first, second uint64, firstRoot, secondRoot Hash, proof []Hash) error {
	switch {
	case first > second || len(proof) > MaxProofLen:
		return ErrProof
	case first == 0:
		if len(proof) != 0 {
			return ErrProof
		}
		return nil
	case first == second:
		if len(proof) != 0 || !equal(firstRoot, secondRoot) {
			return ErrProof
		}
		return nil
	}
	// 1. An empty proof fails.
	if len(proof) == 0 {
		return ErrProof
	}
	// 2. If first is an exact power of 2, prepend first_hash.
	path := proof
	if first&(first-1) == 0 {
		path = append([]Hash{firstRoot}, proof...)
	}
	// 3. fn = first - 1, sn = second - 1.
	fn, sn := first-1, second-1
	// 4. While LSB(fn) is set, right-shift both.
	for fn&1 == 1 {
		fn >>= 1
		sn >>= 1
	}
	// 5. fr = sr = the first value of the path.
	fr, sr := path[0], path[0]
	// 6. For each subsequent value c.
	for _, c := range path[1:] {
		if sn == 0 {
			return ErrProof
		}
		if fn&1 == 1 || fn == sn {
			fr = NodeHash(c, fr)
			sr = NodeHash(c, sr)
			if fn&1 == 0 {
				for fn&1 == 0 && fn != 0 {
					fn >>= 1
					sn >>= 1
				}
			}
		} else {
			sr = NodeHash(sr, c)
		}
		fn >>= 1
		sn >>= 1
	}
	// 7. fr must be first_hash, sr second_hash, and sn 0.
	if sn != 0 || !equal(fr, firstRoot) || !equal(sr, secondRoot) {
		return ErrProof
	}
	return nil
}
