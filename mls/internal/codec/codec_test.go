package codec

import (
	"bytes"
	"errors"
	"testing"
)

func TestVarLenRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 16383, 16384, 1<<30 - 1} {
		var w Writer
		w.VarLen(n)
		b, err := w.Bytes()
		if err != nil {
			t.Fatalf("encode %d: %v", n, err)
		}
		r := NewReader(b)
		if got := r.VarLen(); got != n || r.Finish() != nil {
			t.Fatalf("decode %d: got %d, err %v", n, got, r.Finish())
		}
	}
	var w Writer
	w.VarLen(1 << 30)
	if _, err := w.Bytes(); !errors.Is(err, ErrTooLong) {
		t.Fatalf("2^30: got %v, want ErrTooLong", err)
	}
}

func TestStrictDecoding(t *testing.T) {
	cases := []struct {
		in   []byte
		want error
	}{
		{[]byte{0x40, 0x3f}, ErrNonMinimal},
		{[]byte{0x80, 0x00, 0x3f, 0xff}, ErrNonMinimal},
		{[]byte{0xc0, 0, 0, 0, 0, 0, 0, 0}, ErrInvalidLength},
		{[]byte{0x05, 1, 2}, ErrTruncated},
		{[]byte{0x01, 1, 2}, ErrTrailingData},
		{[]byte{}, ErrTruncated},
	}
	for _, c := range cases {
		r := NewReader(c.in)
		r.Opaque()
		if err := r.Finish(); !errors.Is(err, c.want) {
			t.Errorf("%x: got %v, want %v", c.in, err, c.want)
		}
	}
	r := NewReader([]byte{2})
	r.Bool()
	if !errors.Is(r.Err(), ErrInvalidValue) {
		t.Errorf("bool 2: got %v", r.Err())
	}
}

func TestVectorMustBeConsumed(t *testing.T) {
	r := NewReader([]byte{0x03, 0x00, 0x01, 0x02})
	r.Vector(func(s *Reader) { s.U16() })
	if !errors.Is(r.Err(), ErrTrailingData) {
		t.Fatalf("got %v, want ErrTrailingData", r.Err())
	}
}

func TestElementsRejectsEmptyElement(t *testing.T) {
	r := NewReader([]byte{0x01, 0x00})
	r.Elements(func(s *Reader) {})
	if !errors.Is(r.Err(), ErrInvalidValue) {
		t.Fatalf("got %v, want ErrInvalidValue", r.Err())
	}
}

func TestIntegersAndOptional(t *testing.T) {
	var w Writer
	w.U8(1)
	w.U16(0x0203)
	w.U32(0x04050607)
	w.U64(0x08090a0b0c0d0e0f)
	w.Optional(true, func(w *Writer) { w.Opaque([]byte("hi")) })
	w.Optional(false, nil)
	w.Vector(func(w *Writer) { w.U16(7); w.U16(8) })
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 1, 2, 'h', 'i', 0, 4, 0, 7, 0, 8}
	if !bytes.Equal(b, want) {
		t.Fatalf("got %x want %x", b, want)
	}
	r := NewReader(b)
	if r.U8() != 1 || r.U16() != 0x0203 || r.U32() != 0x04050607 || r.U64() != 0x08090a0b0c0d0e0f {
		t.Fatal("integers mismatch")
	}
	var s []byte
	if !r.Optional(func(r *Reader) { s = r.Opaque() }) || string(s) != "hi" {
		t.Fatal("optional present mismatch")
	}
	if r.Optional(func(r *Reader) { t.Fatal("absent called") }) {
		t.Fatal("optional absent mismatch")
	}
	var got []uint16
	r.Elements(func(r *Reader) { got = append(got, r.U16()) })
	if err := r.Finish(); err != nil || len(got) != 2 || got[0] != 7 || got[1] != 8 {
		t.Fatalf("elements: %v %v", got, err)
	}
}

// TestVectorPrefixSizes checks that Vector, which writes its contents in
// place, produces the same bytes as Opaque of the contents at every
// prefix size boundary, nested and after earlier data.
func TestVectorPrefixSizes(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 65, 16383, 16384, 70000} {
		content := make([]byte, n)
		for i := range content {
			content[i] = byte(i * 7)
		}
		var want Writer
		want.U8(0xaa)
		var inner Writer
		inner.U16(5)
		inner.Opaque(content)
		inner.U8(9)
		want.Opaque(inner.buf)
		want.U8(0xbb)

		var got Writer
		got.U8(0xaa)
		got.Vector(func(w *Writer) {
			w.U16(5)
			w.Vector(func(w *Writer) { w.Raw(content) })
			w.U8(9)
		})
		got.U8(0xbb)
		gb, err := got.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gb, want.buf) {
			t.Fatalf("n=%d: Vector encoding differs from Opaque", n)
		}
	}
}

// TestVectorError checks that an error inside a vector reaches the writer.
func TestVectorError(t *testing.T) {
	var w Writer
	w.Vector(func(w *Writer) { w.U8(1); w.SetErr(ErrInvalidValue) })
	if _, err := w.Bytes(); !errors.Is(err, ErrInvalidValue) {
		t.Fatalf("got %v, want ErrInvalidValue", err)
	}
}
