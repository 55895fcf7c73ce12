package mlsserver

import (
	"encoding/binary"
	"errors"

	"sotto/mls"
)

// groupInfoHeader is the start of a GroupInfo's GroupContext.
type groupInfoHeader struct {
	suite   mls.CipherSuite
	groupID []byte
	epoch   uint64
}

var errGroupInfo = errors.New("mlsserver: malformed group info")

// readGroupInfoHeader reads the cipher suite, group id and epoch of an
// MLSMessage-encoded GroupInfo, which a client outside the group needs
// before sotto/mls parses the rest: MLSMessage.version, wire_format (4,
// mls_group_info), then GroupContext.version, cipher_suite, group_id<V>
// and epoch (RFC 9420 §6, §8.1, §12.4.3). The group id aliases msg.
func readGroupInfoHeader(msg []byte) (groupInfoHeader, error) {
	const wireFormatGroupInfo = 4
	var h groupInfoHeader
	if len(msg) < 8 {
		return h, errGroupInfo
	}
	if binary.BigEndian.Uint16(msg[0:2]) != 1 || binary.BigEndian.Uint16(msg[4:6]) != 1 {
		return h, errors.New("mlsserver: group info: unsupported protocol version")
	}
	if binary.BigEndian.Uint16(msg[2:4]) != wireFormatGroupInfo {
		return h, errors.New("mlsserver: not an MLSMessage GroupInfo")
	}
	h.suite = mls.CipherSuite(binary.BigEndian.Uint16(msg[6:8]))
	rest := msg[8:]
	n, size, ok := readVarint(rest)
	if !ok || uint64(len(rest)-size) < n || uint64(len(rest)-size)-n < 8 {
		return h, errGroupInfo
	}
	rest = rest[size:]
	h.groupID = rest[:n:n]
	h.epoch = binary.BigEndian.Uint64(rest[n : n+8])
	return h, nil
}

// readVarint reads an MLS variable-length vector length (RFC 9420 §2.1.2):
// a 1-, 2- or 4-byte big-endian integer whose top two bits give its size,
// in minimal form.
func readVarint(b []byte) (n uint64, size int, ok bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch b[0] >> 6 {
	case 0:
		return uint64(b[0]), 1, true
	case 1:
		if len(b) < 2 {
			return 0, 0, false
		}
		n = uint64(binary.BigEndian.Uint16(b[:2]) & 0x3fff)
		return n, 2, n >= 64
	case 2:
		if len(b) < 4 {
			return 0, 0, false
		}
		n = uint64(binary.BigEndian.Uint32(b[:4]) & 0x3fffffff)
		return n, 4, n >= 1<<14
	}
	return 0, 0, false
}
