package spqr

import (
	"crypto/sha3"
	"crypto/subtle"
	"fmt"
	"io"

	"github.com/cloudflare/circl/kem/mlkem/mlkem768"
	"github.com/cloudflare/circl/pke/kyber/kyber768"
)

// Incremental ML-KEM-768, as libcrux's incremental API (which libsignal
// uses) splits it:
//
//   - header = ρ ‖ H(ek) (64 bytes), where ek = t ‖ ρ is the standard
//     1184-byte encapsulation key;
//   - the rest of the key = t (1152 bytes);
//   - ciphertext part 1 = the compressed u (960 bytes), which depends only
//     on the matrix A (from ρ) and the coins r;
//   - ciphertext part 2 = the compressed v (128 bytes), which needs t.
//
// The two parts together are the standard 1088-byte ciphertext, so the
// decapsulation is standard ML-KEM-768.
//
// ML-KEM's encapsulation is (K, r) = G(m ‖ H(ek)); c = K-PKE.Encrypt(ek, m,
// r). Part 1 is built by running circl's exported K-PKE encryption (Kyber's
// CPAPKE, the same algorithm as ML-KEM's K-PKE) with the real ρ and t = 0:
// u does not involve t, so its bytes are the real ones. Part 2 runs the same
// encryption again, with the same m and r, once t is known. The state kept
// between the two steps is m and the header (96 bytes). libcrux keeps its own
// 2080-byte form (r and e2 in NTT form, then m): Sotto reads it when the
// header is stored beside it (m is all it needs), but cannot write it without
// ML-KEM internals no allowed library exposes.

const (
	mlkemHeaderSize = 64
	mlkemEKSize     = 1152 // t only; ρ travels in the header
	mlkemCt1Size    = 960
	mlkemCt2Size    = 128
	mlkemDKSize     = mlkem768.PrivateKeySize // 2400, libcrux's "compressed" key pair
	encapsStateSize = 32 + mlkemHeaderSize
	keySeedSize     = mlkem768.KeySeedSize
)

// mlkemKeys is a fresh key pair split for the Braid.
type mlkemKeys struct {
	hdr, ek, dk []byte
}

// mlkemGenerate derives a key pair from 64 bytes of rand (d ‖ z).
func mlkemGenerate(rand io.Reader) (*mlkemKeys, error) {
	seed := make([]byte, keySeedSize)
	if _, err := io.ReadFull(rand, seed); err != nil {
		return nil, fmt.Errorf("spqr: randomness: %w", err)
	}
	pk, sk := mlkem768.NewKeyFromSeed(seed)
	clear(seed)
	full := make([]byte, mlkem768.PublicKeySize)
	pk.Pack(full)
	dk := make([]byte, mlkemDKSize)
	sk.Pack(dk)
	h := sha3.Sum256(full)
	hdr := make([]byte, 0, mlkemHeaderSize)
	hdr = append(hdr, full[mlkemEKSize:]...)
	hdr = append(hdr, h[:]...)
	return &mlkemKeys{hdr: hdr, ek: full[:mlkemEKSize:mlkemEKSize], dk: dk}, nil
}

// ekMatchesHeader reports whether ek (t) completes hdr: H(t ‖ ρ) is the
// header's hash and t is canonical (every coefficient below q), the checks
// of libcrux's validate_pk_bytes.
func ekMatchesHeader(ek, hdr []byte) bool {
	if len(ek) != mlkemEKSize || len(hdr) != mlkemHeaderSize {
		return false
	}
	full := make([]byte, 0, mlkem768.PublicKeySize)
	full = append(full, ek...)
	full = append(full, hdr[:32]...)
	h := sha3.Sum256(full)
	if subtle.ConstantTimeCompare(h[:], hdr[32:]) != 1 {
		return false
	}
	var pk mlkem768.PublicKey
	return pk.Unpack(full) == nil
}

// pkeEncrypt runs K-PKE encryption of m with coins r under t ‖ ρ.
func pkeEncrypt(t, rho, m, r []byte) []byte {
	full := make([]byte, 0, kyber768.PublicKeySize)
	full = append(full, t...)
	full = append(full, rho...)
	var pk kyber768.PublicKey
	pk.Unpack(full)
	ct := make([]byte, kyber768.CiphertextSize)
	pk.EncryptTo(ct, m, r)
	return ct
}

// coins returns ML-KEM's (K, r) = G(m ‖ H(ek)).
func coins(m, hek []byte) (k, r []byte) {
	g := sha3.New512()
	g.Write(m)
	g.Write(hek)
	kr := g.Sum(nil)
	return kr[:32], kr[32:]
}

// mlkemEncaps1 starts an encapsulation to the key whose header is hdr: it
// returns ciphertext part 1, the state for part 2 and the shared secret.
func mlkemEncaps1(hdr []byte, rand io.Reader) (ct1, state, secret []byte, err error) {
	if len(hdr) != mlkemHeaderSize {
		return nil, nil, nil, fmt.Errorf("%w: header of %d bytes", ErrInvalidMessage, len(hdr))
	}
	m := make([]byte, 32)
	if _, err := io.ReadFull(rand, m); err != nil {
		return nil, nil, nil, fmt.Errorf("spqr: randomness: %w", err)
	}
	k, r := coins(m, hdr[32:])
	ct := pkeEncrypt(make([]byte, mlkemEKSize), hdr[:32], m, r)
	state = append(m, hdr...)
	return ct[:mlkemCt1Size], state, k, nil
}

// mlkemEncaps2 finishes the encapsulation once the rest of the key (ek,
// already checked against the header) is known.
func mlkemEncaps2(ek, state []byte) ([]byte, error) {
	if len(ek) != mlkemEKSize || len(state) != encapsStateSize {
		return nil, fmt.Errorf("%w: encapsulation state", ErrState)
	}
	m, hdr := state[:32], state[32:]
	_, r := coins(m, hdr[32:])
	ct := pkeEncrypt(ek, hdr[:32], m, r)
	return ct[mlkemCt1Size:], nil
}

// mlkemDecaps decapsulates ct1 ‖ ct2 with dk (standard ML-KEM-768, with
// implicit rejection).
func mlkemDecaps(dk, ct1, ct2 []byte) ([]byte, error) {
	if len(dk) != mlkemDKSize || len(ct1) != mlkemCt1Size || len(ct2) != mlkemCt2Size {
		return nil, fmt.Errorf("%w: decapsulation sizes", ErrState)
	}
	var sk mlkem768.PrivateKey
	if err := sk.Unpack(dk); err != nil {
		return nil, fmt.Errorf("%w: decapsulation key: %w", ErrState, err)
	}
	ct := make([]byte, 0, mlkemCt1Size+mlkemCt2Size)
	ct = append(ct, ct1...)
	ct = append(ct, ct2...)
	ss := make([]byte, mlkem768.SharedKeySize)
	sk.DecapsulateTo(ss, ct)
	return ss, nil
}
