package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Version is the protocol version spoken by this build.
const Version uint32 = 1

// MaxFrameSize is the largest encoded Frame either side accepts.
const MaxFrameSize = 256 << 10

// NonceSize is the size of a Challenge nonce.
const NonceSize = 32

var (
	// ErrFrameTooLarge reports a frame above MaxFrameSize.
	ErrFrameTooLarge = errors.New("wire: frame too large")
	// ErrMalformed reports bytes that are not a valid Frame.
	ErrMalformed = errors.New("wire: malformed frame")
	// ErrEmptyFrame reports a Frame with neither request, response nor push.
	ErrEmptyFrame = errors.New("wire: empty frame")
)

// VersionError reports a frame of a protocol version this build does not speak.
type VersionError struct{ Got uint32 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("wire: unsupported protocol version %d (this build speaks %d)", e.Got, Version)
}

// DecodeFrame parses one frame received from the network. It returns
// ErrFrameTooLarge, ErrMalformed (wrapped), ErrEmptyFrame, or a
// *VersionError together with the decoded frame (so that the caller can
// answer the request id with UPGRADE_REQUIRED).
func DecodeFrame(b []byte) (*Frame, error) {
	if len(b) > MaxFrameSize {
		return nil, ErrFrameTooLarge
	}
	f := new(Frame)
	if err := proto.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if f.Version != Version {
		return f, &VersionError{Got: f.Version}
	}
	if f.Kind == nil {
		return nil, ErrEmptyFrame
	}
	return f, nil
}

// EncodeFrame stamps f with Version and marshals it, enforcing MaxFrameSize.
func EncodeFrame(f *Frame) ([]byte, error) {
	f.Version = Version
	b, err := proto.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("wire: encode frame: %w", err)
	}
	if len(b) > MaxFrameSize {
		return nil, ErrFrameTooLarge
	}
	return b, nil
}

// AppendFrame is EncodeFrame appending to b (which may be a reused buffer).
func AppendFrame(b []byte, f *Frame) ([]byte, error) {
	f.Version = Version
	n := len(b)
	b, err := proto.MarshalOptions{}.MarshalAppend(b, f)
	if err != nil {
		return b[:n], fmt.Errorf("wire: encode frame: %w", err)
	}
	if len(b)-n > MaxFrameSize {
		return b[:n], ErrFrameTooLarge
	}
	return b, nil
}

// Transcript labels: each signature covers exactly one kind of statement.
const (
	authLabel   = "sotto/relay/authenticate/v1"
	enrollLabel = "sotto/relay/enroll/v1"
	linkLabel   = "sotto/relay/link-device/v1"
)

// AuthTranscript is what a device signs to answer a Challenge.
func AuthTranscript(nonce []byte, username string, deviceID uint32) []byte {
	b := appendField(nil, []byte(authLabel))
	b = appendField(b, nonce)
	b = appendField(b, []byte(username))
	return binary.BigEndian.AppendUint32(b, deviceID)
}

// EnrollTranscript is what a new device signs in an EnrollRequest: the
// current challenge nonce bound to the username and the keys it registers.
func EnrollTranscript(nonce []byte, username string, deviceKey, identityKey []byte, registrationID uint32) []byte {
	b := appendField(nil, []byte(enrollLabel))
	b = appendField(b, nonce)
	b = appendField(b, []byte(username))
	b = appendField(b, deviceKey)
	b = appendField(b, identityKey)
	return binary.BigEndian.AppendUint32(b, registrationID)
}

// LinkTranscript is what a new device signs in a LinkDeviceRequest.
func LinkTranscript(nonce []byte, linkToken string, deviceKey, identityKey []byte, registrationID uint32) []byte {
	b := appendField(nil, []byte(linkLabel))
	b = appendField(b, nonce)
	b = appendField(b, []byte(linkToken))
	b = appendField(b, deviceKey)
	b = appendField(b, identityKey)
	return binary.BigEndian.AppendUint32(b, registrationID)
}

// appendField appends a 32-bit big-endian length and then v, so that no two
// different field lists share an encoding.
func appendField(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}
