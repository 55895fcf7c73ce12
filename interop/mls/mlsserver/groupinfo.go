package mlsserver

import (
	"encoding/binary"
	"errors"

	"sotto/mls"
)

// groupInfoSuite reads the cipher suite of an MLSMessage-encoded GroupInfo,
// which an external joiner needs to make its signature key before
// sotto/mls parses the rest: MLSMessage.version, wire_format (4,
// mls_group_info), then GroupContext.version and cipher_suite
// (RFC 9420 §6 and §12.4.3).
func groupInfoSuite(msg []byte) (mls.CipherSuite, error) {
	const wireFormatGroupInfo = 4
	if len(msg) < 8 {
		return 0, errors.New("mlsserver: group info too short")
	}
	if binary.BigEndian.Uint16(msg[0:2]) != 1 || binary.BigEndian.Uint16(msg[4:6]) != 1 {
		return 0, errors.New("mlsserver: group info: unsupported protocol version")
	}
	if binary.BigEndian.Uint16(msg[2:4]) != wireFormatGroupInfo {
		return 0, errors.New("mlsserver: group info: not an MLSMessage GroupInfo")
	}
	return mls.CipherSuite(binary.BigEndian.Uint16(msg[6:8])), nil
}
