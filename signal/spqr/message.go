package spqr

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// A version-1 SPQR message, as carried in the SignalMessage's pq_ratchet
// field: the version byte 1, the epoch and the message index (varints), a
// payload type byte, and for the chunk-carrying types the chunk index
// (varint, below 2^16) and the 32 chunk bytes. Bytes after that are ignored,
// as libsignal ignores them.

type payloadType byte

const (
	payNone payloadType = iota
	payHdr
	payEk
	payEkCt1Ack
	payCt1Ack
	payCt1
	payCt2
	payLast = payCt2
)

func (p payloadType) hasChunk() bool { return p != payNone && p != payCt1Ack }

type message struct {
	epoch uint64
	typ   payloadType
	chunk chunk // when typ.hasChunk()
}

func (m *message) encode(index uint32) []byte {
	out := make([]byte, 0, 48)
	out = append(out, byte(Version1))
	out = protowire.AppendVarint(out, m.epoch)
	out = protowire.AppendVarint(out, uint64(index))
	out = append(out, byte(m.typ))
	if m.typ.hasChunk() {
		out = protowire.AppendVarint(out, uint64(m.chunk.index))
		out = append(out, m.chunk.data[:]...)
	}
	return out
}

// uvarint reads a varint of at most 10 bytes. Like libsignal's reader it
// takes the low 7 bits of each byte, so non-minimal encodings are accepted.
func uvarint(b []byte) (uint64, int, bool) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
	}
	return 0, 0, false
}

// decodeMessage parses a version-1 message and returns it with its index.
func decodeMessage(b []byte) (*message, uint32, error) {
	bad := func(what string) (*message, uint32, error) {
		return nil, 0, fmt.Errorf("%w: %s", ErrInvalidMessage, what)
	}
	if len(b) == 0 || b[0] != byte(Version1) {
		return bad("version")
	}
	b = b[1:]
	epoch, n, ok := uvarint(b)
	if !ok || epoch == 0 {
		return bad("epoch")
	}
	b = b[n:]
	index, n, ok := uvarint(b)
	if !ok || index > 0xffffffff {
		return bad("index")
	}
	b = b[n:]
	if len(b) == 0 || payloadType(b[0]) > payLast {
		return bad("payload type")
	}
	m := &message{epoch: epoch, typ: payloadType(b[0])}
	b = b[1:]
	if m.typ.hasChunk() {
		ci, n, ok := uvarint(b)
		if !ok || ci > 0xffff || len(b)-n < chunkSize {
			return bad("chunk")
		}
		m.chunk.index = uint16(ci)
		copy(m.chunk.data[:], b[n:n+chunkSize])
	}
	return m, uint32(index), nil
}
