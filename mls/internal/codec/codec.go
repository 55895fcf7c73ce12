// Package codec implements the TLS presentation language as profiled by
// RFC 9420 (MLS): fixed-width big-endian integers, opaque vectors with a
// variable-length (QUIC-style) length prefix, and optional values.
//
// Decoding is strict: a length prefix must use its minimal encoding, a
// vector's contents must be consumed exactly, and a top-level decode must
// leave no trailing bytes. A Reader records the first error it meets and
// returns zero values afterwards, so decoders can be written straight-line
// and check Err once.
package codec

import (
	"errors"
	"fmt"
	"slices"
)

// MaxVectorLen is the largest length a variable-length vector prefix can
// express (2^30 - 1).
const MaxVectorLen = 1<<30 - 1

var (
	// ErrTruncated reports input that ended before a value was complete.
	ErrTruncated = errors.New("codec: truncated input")
	// ErrNonMinimal reports a vector length not in its shortest encoding.
	ErrNonMinimal = errors.New("codec: non-minimal length encoding")
	// ErrInvalidLength reports a length prefix using the reserved 0b11 form.
	ErrInvalidLength = errors.New("codec: invalid length prefix")
	// ErrTrailingData reports bytes left over after a complete value.
	ErrTrailingData = errors.New("codec: trailing data")
	// ErrTooLong reports a vector longer than the encoding allows.
	ErrTooLong = errors.New("codec: vector too long")
	// ErrInvalidValue reports a syntactically invalid value (e.g. an
	// optional presence byte other than 0 or 1).
	ErrInvalidValue = errors.New("codec: invalid value")
)

// Writer accumulates an encoding. The zero value is ready to use.
type Writer struct {
	buf []byte
	err error
}

// Bytes returns the encoding written so far and the first error met.
func (w *Writer) Bytes() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// Err returns the first error met while writing.
func (w *Writer) Err() error { return w.err }

// SetErr records err if no earlier error was recorded.
func (w *Writer) SetErr(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Grow makes room for n more bytes, so that writing them does not
// reallocate.
func (w *Writer) Grow(n int) { w.buf = slices.Grow(w.buf, n) }

// U8 writes an 8-bit integer.
func (w *Writer) U8(v uint8) { w.buf = append(w.buf, v) }

// U16 writes a big-endian 16-bit integer.
func (w *Writer) U16(v uint16) { w.buf = append(w.buf, byte(v>>8), byte(v)) }

// U32 writes a big-endian 32-bit integer.
func (w *Writer) U32(v uint32) {
	w.buf = append(w.buf, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// U64 writes a big-endian 64-bit integer.
func (w *Writer) U64(v uint64) {
	w.U32(uint32(v >> 32))
	w.U32(uint32(v))
}

// Bool writes a boolean as one byte, 0 or 1.
func (w *Writer) Bool(v bool) {
	if v {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Raw appends b without a length prefix.
func (w *Writer) Raw(b []byte) { w.buf = append(w.buf, b...) }

// VarLen writes a variable-length vector length prefix.
func (w *Writer) VarLen(n int) {
	switch {
	case n < 0 || n > MaxVectorLen:
		w.SetErr(ErrTooLong)
	case n < 1<<6:
		w.U8(uint8(n))
	case n < 1<<14:
		w.U16(uint16(n) | 0x4000)
	default:
		w.U32(uint32(n) | 0x80000000)
	}
}

// Opaque writes b as a variable-length vector opaque<V>.
func (w *Writer) Opaque(b []byte) {
	w.VarLen(len(b))
	w.Raw(b)
}

// Vector writes a variable-length vector whose contents are produced by fn.
// fn writes in place after a one-byte length placeholder; a longer length
// prefix moves the contents up once, so nested vectors allocate nothing
// of their own.
func (w *Writer) Vector(fn func(w *Writer)) {
	start := len(w.buf)
	w.buf = append(w.buf, 0)
	fn(w)
	end := len(w.buf)
	n := end - start - 1
	switch {
	case n < 1<<6:
		w.buf[start] = uint8(n)
	case n < 1<<14:
		w.buf = append(w.buf, 0)
		copy(w.buf[start+2:], w.buf[start+1:end])
		w.buf[start], w.buf[start+1] = byte(n>>8)|0x40, byte(n)
	case n <= MaxVectorLen:
		w.buf = append(w.buf, 0, 0, 0)
		copy(w.buf[start+4:], w.buf[start+1:end])
		w.buf[start], w.buf[start+1], w.buf[start+2], w.buf[start+3] = byte(n>>24)|0x80, byte(n>>16), byte(n>>8), byte(n)
	default:
		w.buf = w.buf[:start]
		w.SetErr(ErrTooLong)
	}
}

// Optional writes the presence byte and, if present, the value written by fn.
func (w *Writer) Optional(present bool, fn func(w *Writer)) {
	w.Bool(present)
	if present {
		fn(w)
	}
}

// Reader decodes from a byte slice. Slices it returns alias the input.
type Reader struct {
	buf []byte
	err error
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{buf: b} }

// Err returns the first error met while reading.
func (r *Reader) Err() error { return r.err }

// SetErr records err if no earlier error was recorded.
func (r *Reader) SetErr(err error) {
	if r.err == nil {
		r.err = err
		r.buf = nil
	}
}

// Len returns the number of unread bytes.
func (r *Reader) Len() int { return len(r.buf) }

// Empty reports whether all input has been consumed.
func (r *Reader) Empty() bool { return len(r.buf) == 0 }

// Finish returns the first error met, or ErrTrailingData if input remains.
func (r *Reader) Finish() error {
	if r.err != nil {
		return r.err
	}
	if len(r.buf) != 0 {
		return ErrTrailingData
	}
	return nil
}

// Raw reads n bytes without a length prefix.
func (r *Reader) Raw(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf) {
		r.SetErr(ErrTruncated)
		return nil
	}
	b := r.buf[:n:n]
	r.buf = r.buf[n:]
	return b
}

// U8 reads an 8-bit integer.
func (r *Reader) U8() uint8 {
	b := r.Raw(1)
	if b == nil {
		return 0
	}
	return b[0]
}

// U16 reads a big-endian 16-bit integer.
func (r *Reader) U16() uint16 {
	b := r.Raw(2)
	if b == nil {
		return 0
	}
	return uint16(b[0])<<8 | uint16(b[1])
}

// U32 reads a big-endian 32-bit integer.
func (r *Reader) U32() uint32 {
	b := r.Raw(4)
	if b == nil {
		return 0
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// U64 reads a big-endian 64-bit integer.
func (r *Reader) U64() uint64 {
	hi := r.U32()
	lo := r.U32()
	return uint64(hi)<<32 | uint64(lo)
}

// Bool reads a one-byte boolean; values other than 0 and 1 are rejected.
func (r *Reader) Bool() bool {
	switch r.U8() {
	case 0:
		return false
	case 1:
		return true
	default:
		r.SetErr(fmt.Errorf("%w: boolean", ErrInvalidValue))
		return false
	}
}

// VarLen reads a variable-length vector length prefix, requiring the
// minimal encoding.
func (r *Reader) VarLen() int {
	if r.err != nil {
		return 0
	}
	if len(r.buf) == 0 {
		r.SetErr(ErrTruncated)
		return 0
	}
	var n uint32
	switch r.buf[0] >> 6 {
	case 0:
		n = uint32(r.U8())
	case 1:
		n = uint32(r.U16()) & 0x3fff
		if r.err == nil && n < 1<<6 {
			r.SetErr(ErrNonMinimal)
		}
	case 2:
		n = r.U32() & 0x3fffffff
		if r.err == nil && n < 1<<14 {
			r.SetErr(ErrNonMinimal)
		}
	default:
		r.SetErr(ErrInvalidLength)
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

// Opaque reads a variable-length vector opaque<V>.
func (r *Reader) Opaque() []byte {
	n := r.VarLen()
	if r.err != nil {
		return nil
	}
	b := r.Raw(n)
	if b == nil && r.err == nil {
		return []byte{}
	}
	return b
}

// Vector reads a variable-length vector and calls fn with a Reader over
// exactly its contents; fn must consume them all.
func (r *Reader) Vector(fn func(r *Reader)) {
	b := r.Opaque()
	if r.err != nil {
		return
	}
	sub := NewReader(b)
	fn(sub)
	if err := sub.Finish(); err != nil {
		r.SetErr(err)
	}
}

// Elements reads a variable-length vector of elements, calling fn until
// the vector's contents are consumed. An element that consumes no input is
// rejected, so a decoder cannot loop forever.
func (r *Reader) Elements(fn func(r *Reader)) {
	r.Vector(func(sub *Reader) {
		for sub.err == nil && len(sub.buf) > 0 {
			before := len(sub.buf)
			fn(sub)
			if sub.err == nil && len(sub.buf) == before {
				sub.SetErr(fmt.Errorf("%w: empty vector element", ErrInvalidValue))
			}
		}
	})
}

// Optional reads a presence byte and, if present, calls fn. It reports
// whether the value was present.
func (r *Reader) Optional(fn func(r *Reader)) bool {
	if !r.Bool() {
		return false
	}
	fn(r)
	return r.err == nil
}
