package spqr

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// The erasure code: a message of 2n bytes is read as n big-endian 16-bit
// values; value i belongs to column i%16 at position i/16. Each column is
// the polynomial through its values at x = 0, 1, 2, …; chunk k carries the
// 16 columns evaluated at x = k. The first chunks are therefore the message
// itself, and any set of chunks with enough distinct indexes rebuilds it.

const (
	chunkSize = 32
	columns   = chunkSize / 2
	// maxEncoded bounds what one encoder takes (2^16 positions per column).
	maxEncoded = columns * 2 << 16
)

// chunk is one 32-byte piece of an encoded message and its index.
type chunk struct {
	index uint16
	data  [chunkSize]byte
}

// encoder hands out chunk 0, 1, 2, … of one message, wrapping at 2^16.
// Before the first parity chunk it keeps the values; after, the columns'
// polynomials (as libsignal does).
type encoder struct {
	next   uint32
	points [columns][]uint16 // nil once polys is set
	polys  [columns]poly
}

func newEncoder(msg []byte) (*encoder, error) {
	if len(msg)%2 != 0 || len(msg) > maxEncoded {
		return nil, fmt.Errorf("%w: cannot encode %d bytes", ErrEncoding, len(msg))
	}
	e := &encoder{}
	for c := range e.points {
		e.points[c] = make([]uint16, 0, len(msg)/chunkSize+1)
	}
	for i := 0; i < len(msg)/2; i++ {
		c := i % columns
		e.points[c] = append(e.points[c], binary.BigEndian.Uint16(msg[2*i:]))
	}
	return e, nil
}

// value returns column c at x.
func (e *encoder) value(c int, x uint16) uint16 {
	if e.polys[c] == nil {
		if int(x) < len(e.points[c]) {
			return e.points[c][x]
		}
		e.toPolys()
	}
	return e.polys[c].eval(x)
}

func (e *encoder) toPolys() {
	for c := range e.points {
		ys := e.points[c]
		xs := make([]uint16, len(ys))
		for i := range xs {
			xs[i] = uint16(i)
		}
		e.polys[c] = interpolate(xs, ys)
		if e.polys[c] == nil {
			e.polys[c] = poly{}
		}
		e.points[c] = nil
	}
}

func (e *encoder) chunkAt(idx uint16) chunk {
	ch := chunk{index: idx}
	for c := range columns {
		binary.BigEndian.PutUint16(ch.data[2*c:], e.value(c, idx))
	}
	return ch
}

func (e *encoder) nextChunk() chunk {
	ch := e.chunkAt(uint16(e.next))
	e.next++
	return ch
}

// point is one received value of a column.
type point struct{ x, y uint16 }

// decoder collects chunks of a message of known length until every column
// has as many distinct points as it has values.
type decoder struct {
	needed   int // 16-bit values in the message
	points   [columns][]point
	complete bool
}

func newDecoder(length int) (*decoder, error) {
	if length%2 != 0 || length > maxEncoded {
		return nil, fmt.Errorf("%w: cannot decode %d bytes", ErrEncoding, length)
	}
	return &decoder{needed: length / 2}, nil
}

// necessary returns how many values column c holds.
func (d *decoder) necessary(c int) int {
	n := d.needed / columns
	if c < d.needed%columns {
		n++
	}
	return n
}

// add records the chunk's points. A column keeps at most twice what it
// needs (a systematic point is always kept); a repeated x keeps the first
// value, so duplicates change nothing.
func (d *decoder) add(ch chunk) {
	for c := range columns {
		x := ch.index
		need := d.necessary(c)
		if int(x) >= need && len(d.points[c]) >= need {
			continue
		}
		i, found := slices.BinarySearchFunc(d.points[c], x, func(p point, x uint16) int { return int(p.x) - int(x) })
		if found {
			continue
		}
		y := binary.BigEndian.Uint16(ch.data[2*c:])
		d.points[c] = slices.Insert(d.points[c], i, point{x, y})
	}
}

// message returns the decoded message once enough chunks have arrived.
func (d *decoder) message() ([]byte, bool) {
	if d.complete {
		return nil, false
	}
	for c := range columns {
		if len(d.points[c]) < d.necessary(c) {
			return nil, false
		}
	}
	var polys [columns]poly
	out := make([]byte, 2*d.needed)
	for i := 0; i < d.needed; i++ {
		c, x := i%columns, uint16(i/columns)
		pts := d.points[c]
		j, found := slices.BinarySearchFunc(pts, x, func(p point, x uint16) int { return int(p.x) - int(x) })
		var y uint16
		if found {
			y = pts[j].y
		} else {
			if polys[c] == nil {
				use := pts[:d.necessary(c)]
				xs, ys := make([]uint16, len(use)), make([]uint16, len(use))
				for k, p := range use {
					xs[k], ys[k] = p.x, p.y
				}
				polys[c] = interpolate(xs, ys)
			}
			y = polys[c].eval(x)
		}
		binary.BigEndian.PutUint16(out[2*i:], y)
	}
	return out, true
}
