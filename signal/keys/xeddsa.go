package keys

import (
	"crypto/sha512"
	"crypto/subtle"

	"filippo.io/edwards25519"
	"filippo.io/edwards25519/field"
)

// xeddsaSign signs as libsignal's curve25519 PrivateKey::calculate_signature:
// the Edwards key A = a·B is used as is, and its sign bit is carried in the
// top bit of the signature's last byte.
func xeddsaSign(priv []byte, nonce *[64]byte, msg [][]byte) []byte {
	var wide [64]byte
	copy(wide[:], priv)
	a, _ := edwards25519.NewScalar().SetUniformBytes(wide[:])
	clear(wide[:])
	A := new(edwards25519.Point).ScalarBaseMult(a)
	aBytes := A.Bytes()
	signBit := aBytes[31] & 0x80

	h1 := sha512.New()
	var prefix [32]byte
	for i := range prefix {
		prefix[i] = 0xff
	}
	prefix[0] = 0xfe
	h1.Write(prefix[:])
	h1.Write(priv)
	for _, m := range msg {
		h1.Write(m)
	}
	h1.Write(nonce[:])
	rDigest := h1.Sum(nil)
	r, _ := edwards25519.NewScalar().SetUniformBytes(rDigest)
	clear(rDigest)
	R := new(edwards25519.Point).ScalarBaseMult(r).Bytes()

	h2 := sha512.New()
	h2.Write(R)
	h2.Write(aBytes)
	for _, m := range msg {
		h2.Write(m)
	}
	h, _ := edwards25519.NewScalar().SetUniformBytes(h2.Sum(nil))
	s := edwards25519.NewScalar().MultiplyAdd(h, a, r)

	sig := make([]byte, 0, SignatureSize)
	sig = append(sig, R...)
	sig = append(sig, s.Bytes()...)
	sig[63] &= 0x7f
	sig[63] |= signBit
	return sig
}

var feOne = new(field.Element).One()

// xeddsaVerify verifies as libsignal's curve25519 verify_signature.
func xeddsaVerify(pub *[32]byte, sig []byte, msg [][]byte) bool {
	A, ok := montgomeryToEdwards(pub, sig[63]>>7)
	if !ok {
		return false
	}
	capA := A.Bytes()

	var sb [64]byte
	copy(sb[:32], sig[32:])
	sb[31] &= 0x7f
	if sb[31]&0xe0 != 0 {
		return false
	}
	s, _ := edwards25519.NewScalar().SetUniformBytes(sb[:])

	hh := sha512.New()
	hh.Write(sig[:32])
	hh.Write(capA)
	for _, m := range msg {
		hh.Write(m)
	}
	h, _ := edwards25519.NewScalar().SetUniformBytes(hh.Sum(nil))
	minusA := new(edwards25519.Point).Negate(A)
	check := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(h, minusA, s).Bytes()
	return subtle.ConstantTimeCompare(check, sig[:32]) == 1
}

// montgomeryToEdwards maps a Montgomery u-coordinate to the Edwards point
// with the given sign bit, as curve25519-dalek's to_edwards does.
func montgomeryToEdwards(pub *[32]byte, sign byte) (*edwards25519.Point, bool) {
	u, err := new(field.Element).SetBytes(pub[:])
	if err != nil {
		return nil, false
	}
	minusOne := new(field.Element).Negate(feOne)
	if u.Equal(minusOne) == 1 {
		return nil, false
	}
	num := new(field.Element).Subtract(u, feOne)
	den := new(field.Element).Add(u, feOne)
	y := new(field.Element).Multiply(num, den.Invert(den))
	yb := y.Bytes()
	yb[31] ^= sign << 7
	A, err := new(edwards25519.Point).SetBytes(yb)
	if err != nil {
		return nil, false
	}
	return A, true
}

// IsCanonical reports what libsignal's PublicKey::is_canonical does: the
// encoding is below 2^255-19 and the point has no small-order component.
func (k PublicKey) IsCanonical() bool {
	if k.b[31]&0x80 != 0 {
		return false
	}
	if k.b[31] == 0x7f && k.b[0] >= 256-19 {
		allFF := true
		for _, c := range k.b[1:31] {
			if c != 0xff {
				allFF = false
				break
			}
		}
		if allFF {
			return false
		}
	}
	P, ok := montgomeryToEdwards(&k.b, 0)
	if !ok {
		return false
	}
	// P is torsion-free iff [1/8]([8]P) == P (scalars mod the group order).
	var eight [64]byte
	eight[0] = 8
	inv8, _ := edwards25519.NewScalar().SetUniformBytes(eight[:])
	inv8.Invert(inv8)
	Q := new(edwards25519.Point).MultByCofactor(P)
	// The key is public: variable time is fine here.
	Q.VarTimeDoubleScalarBaseMult(inv8, Q, edwards25519.NewScalar())
	return Q.Equal(P) == 1
}
