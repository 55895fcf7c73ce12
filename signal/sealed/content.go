package sealed

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// Message types of the inner message, numbered as libsignal's
// CiphertextMessageType (the session package's 2 and 3, and the group and
// plaintext kinds).
const (
	TypeSignal    = 2 // SignalMessage ("whisper")
	TypePreKey    = 3 // PreKeySignalMessage
	TypeSenderKey = 7 // SenderKeyMessage
	TypePlaintext = 8 // PlaintextContent
)

// ContentHint tells the recipient what to do when the inner message cannot
// be decrypted, as libsignal's ContentHint.
type ContentHint uint32

// Content hints. Other values are kept as they are (libsignal's Unknown).
const (
	HintDefault    ContentHint = 0 // show an error at once
	HintResendable ContentHint = 1 // the sender will resend: delay any error
	HintImplicit   ContentHint = 2 // show no error (receipts, typing)
)

// Content is libsignal's UnidentifiedSenderMessageContent: the sealed
// inner message with its sender certificate.
type Content struct {
	Type     int // TypeSignal, TypePreKey, TypeSenderKey or TypePlaintext
	Sender   *SenderCertificate
	Contents []byte // the serialized inner message
	Hint     ContentHint
	GroupID  []byte // nil when absent

	serialized []byte
}

// protoType maps a CiphertextMessageType to the .proto's Type enum, where
// PreKey is 1 (the others coincide).
func protoType(t int) (uint64, bool) {
	switch t {
	case TypePreKey:
		return 1, true
	case TypeSignal, TypeSenderKey, TypePlaintext:
		return uint64(t), true
	}
	return 0, false
}

// NewContent builds and encodes a Content as libsignal does: a default hint
// and an empty group id are left out.
func NewContent(msgType int, sender *SenderCertificate, contents []byte, hint ContentHint, groupID []byte) (*Content, error) {
	pt, ok := protoType(msgType)
	if !ok {
		return nil, fmt.Errorf("sealed: message type %d cannot be sealed", msgType)
	}
	if sender == nil {
		return nil, fmt.Errorf("sealed: content needs a sender certificate")
	}
	var b []byte
	b = appendVarintField(b, 1, pt)
	b = appendBytesField(b, 2, sender.serialized)
	b = appendBytesField(b, 3, contents)
	if hint != HintDefault {
		b = appendVarintField(b, 4, uint64(int64(int32(hint))))
	}
	var gid []byte
	if len(groupID) > 0 {
		b = appendBytesField(b, 5, groupID)
		gid = slices.Clone(groupID)
	}
	return &Content{
		Type: msgType, Sender: sender, Contents: slices.Clone(contents), Hint: hint, GroupID: gid,
		serialized: b,
	}, nil
}

// ParseContent decodes an UnidentifiedSenderMessageContent.
func ParseContent(b []byte) (*Content, error) {
	f, ok := decodeFields(b, map[protowire.Number]protowire.Type{
		1: protowire.VarintType, 2: protowire.BytesType, 3: protowire.BytesType,
		4: protowire.VarintType, 5: protowire.BytesType,
	})
	if !ok || f[1] == nil || f[2] == nil || f[3] == nil {
		return nil, fmt.Errorf("%w: content encoding", ErrInvalidMessage)
	}
	c := &Content{Contents: slices.Clone(f[3].bytes), serialized: slices.Clone(b)}
	switch t := int32(f[1].num); t {
	case 1:
		c.Type = TypePreKey
	case TypeSignal, TypeSenderKey, TypePlaintext:
		c.Type = int(t)
	default:
		return nil, fmt.Errorf("%w: content type %d", ErrInvalidMessage, t)
	}
	if f[4] != nil {
		c.Hint = ContentHint(uint32(int32(f[4].num)))
	}
	if f[5] != nil {
		c.GroupID = slices.Clone(f[5].bytes)
	}
	var err error
	if c.Sender, err = ParseSenderCertificate(f[2].bytes); err != nil {
		return nil, err
	}
	return c, nil
}

// Serialize returns the content's encoding.
func (c *Content) Serialize() []byte { return slices.Clone(c.serialized) }
