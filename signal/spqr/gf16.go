package spqr

// Arithmetic in GF(2^16) modulo x^16 + x^12 + x^3 + x + 1 (0x1100b), the
// field of SPQR's erasure code. The values are chunks of public keys and
// ciphertexts, never secrets, so the code need not be constant time.

const gfPoly = 0x1100b

// gfMul multiplies a and b: a carry-less product reduced by gfPoly.
func gfMul(a, b uint16) uint16 {
	var p uint32
	x, y := uint32(a), uint32(b)
	for y != 0 {
		if y&1 != 0 {
			p ^= x
		}
		x <<= 1
		y >>= 1
	}
	for bit := 31; bit >= 16; bit-- {
		if p&(1<<bit) != 0 {
			p ^= gfPoly << (bit - 16)
		}
	}
	return uint16(p)
}

// gfInv returns the inverse of a non-zero a (a^(2^16-2)); gfInv(0) is 0.
func gfInv(a uint16) uint16 {
	r := uint16(1)
	base := a
	for e := uint32(0xfffe); e != 0; e >>= 1 {
		if e&1 != 0 {
			r = gfMul(r, base)
		}
		base = gfMul(base, base)
	}
	return r
}

// gfDiv returns a/b for b != 0.
func gfDiv(a, b uint16) uint16 { return gfMul(a, gfInv(b)) }

// poly is a polynomial over GF(2^16), lowest coefficient first.
type poly []uint16

// eval returns p(x) (Horner's rule).
func (p poly) eval(x uint16) uint16 {
	var y uint16
	for i := len(p) - 1; i >= 0; i-- {
		y = gfMul(y, x) ^ p[i]
	}
	return y
}

// interpolate returns the polynomial of degree < len(xs) through the points
// (xs[i], ys[i]); the xs must be distinct.
func interpolate(xs, ys []uint16) poly {
	n := len(xs)
	out := make(poly, n)
	if n == 0 {
		return out
	}
	// m(x) = Π (x - xs[j]); subtraction is addition in characteristic 2.
	m := make(poly, n+1)
	m[0] = 1
	for j, xj := range xs {
		for k := j + 1; k > 0; k-- {
			m[k] = m[k-1] ^ gfMul(m[k], xj)
		}
		m[0] = gfMul(m[0], xj)
	}
	q := make(poly, n)
	for i, xi := range xs {
		// q(x) = m(x) / (x - xi), by synthetic division from the top.
		carry := uint16(0)
		for k := n; k >= 1; k-- {
			carry = m[k] ^ gfMul(carry, xi)
			q[k-1] = carry
		}
		denom := uint16(1)
		for j, xj := range xs {
			if j != i {
				denom = gfMul(denom, xi^xj)
			}
		}
		scale := gfDiv(ys[i], denom)
		for k := range q {
			out[k] ^= gfMul(q[k], scale)
		}
	}
	return out
}
