package wire

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// The relay's hot path, without reflection: decoding the requests that
// carry messages (SendMessage, SealedSend, Ack) and encoding the frames that answer
// and deliver them. Everything here produces or accepts exactly what the
// generated code does; anything unusual is left to it.

// DecodeHotRequest decodes b if it is a current-version Frame carrying a
// SendMessage, SealedSend or Ack request in the plain shape encoders produce (each
// field at most once, no unknown fields). ok is false for anything else,
// including malformed input: the caller then uses DecodeFrame, which
// decides. When ok, the result equals what DecodeFrame returns, and it
// does not alias b.
func DecodeHotRequest(b []byte) (f *Frame, ok bool) {
	if len(b) > MaxFrameSize {
		return nil, false
	}
	var (
		version      uint64
		reqb         []byte
		seenV, seenR bool
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType && !seenV:
			version, n = protowire.ConsumeVarint(b)
			seenV = true
		case num == 2 && typ == protowire.BytesType && !seenR:
			reqb, n = protowire.ConsumeBytes(b)
			seenR = true
		default:
			return nil, false
		}
		if n < 0 {
			return nil, false
		}
		b = b[n:]
	}
	if !seenR || uint32(version) != Version || version > 0xffffffff {
		return nil, false
	}
	req := &Request{}
	var seenID, seenBody bool
	for len(reqb) > 0 {
		num, typ, n := protowire.ConsumeTag(reqb)
		if n < 0 {
			return nil, false
		}
		reqb = reqb[n:]
		switch {
		case num == 1 && typ == protowire.VarintType && !seenID:
			req.Id, n = protowire.ConsumeVarint(reqb)
			seenID = true
		case num == 17 && typ == protowire.BytesType && !seenBody:
			var v []byte
			if v, n = protowire.ConsumeBytes(reqb); n >= 0 {
				sm, ok := decodeSendMessage(v)
				if !ok {
					return nil, false
				}
				req.Body = &Request_SendMessage{SendMessage: sm}
			}
			seenBody = true
		case num == 92 && typ == protowire.BytesType && !seenBody:
			var v []byte
			if v, n = protowire.ConsumeBytes(reqb); n >= 0 {
				ss, ok := decodeSealedSend(v)
				if !ok {
					return nil, false
				}
				req.Body = &Request_SealedSend{SealedSend: ss}
			}
			seenBody = true
		case num == 18 && typ == protowire.BytesType && !seenBody:
			var v []byte
			if v, n = protowire.ConsumeBytes(reqb); n >= 0 {
				ack, ok := decodeAck(v)
				if !ok {
					return nil, false
				}
				req.Body = &Request_Ack{Ack: ack}
			}
			seenBody = true
		default:
			return nil, false
		}
		if n < 0 {
			return nil, false
		}
		reqb = reqb[n:]
	}
	if req.Body == nil {
		return nil, false
	}
	return &Frame{Version: Version, Kind: &Frame_Request{Request: req}}, true
}

func decodeSendMessage(b []byte) (*SendMessageRequest, bool) {
	r := &SendMessageRequest{}
	if !decodeSendFields(b, &r.Recipient, &r.Messages, &r.MessageId, nil) {
		return nil, false
	}
	return r, true
}

func decodeSealedSend(b []byte) (*SealedSendRequest, bool) {
	r := &SealedSendRequest{}
	if !decodeSendFields(b, &r.Recipient, &r.Messages, &r.MessageId, &r.AccessKey) {
		return nil, false
	}
	return r, true
}

// decodeSendFields decodes the fields SendMessageRequest and
// SealedSendRequest share (recipient 1, messages 2, message_id 3) and,
// when accessKey is not nil, SealedSendRequest's access_key (4).
func decodeSendFields(b []byte, rcpt *string, msgs *[]*OutgoingMessage, mid *[]byte, accessKey *[]byte) bool {
	var seenRcpt, seenMID, seenKey bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.BytesType {
			return false
		}
		b = b[n:]
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == 1 && !seenRcpt:
			if !utf8.Valid(v) {
				return false
			}
			*rcpt, seenRcpt = string(v), true
		case num == 2:
			m, ok := decodeOutgoing(v)
			if !ok {
				return false
			}
			*msgs = append(*msgs, m)
		case num == 3 && !seenMID:
			*mid, seenMID = cloneNonEmpty(v), true
		case num == 4 && accessKey != nil && !seenKey:
			*accessKey, seenKey = cloneNonEmpty(v), true
		default:
			return false
		}
	}
	return true
}

func decodeOutgoing(b []byte) (*OutgoingMessage, bool) {
	m := &OutgoingMessage{}
	var seen [5]bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num < 1 || num > 4 || seen[num] {
			return nil, false
		}
		seen[num] = true
		b = b[n:]
		if num == 4 {
			if typ != protowire.BytesType {
				return nil, false
			}
			var v []byte
			if v, n = protowire.ConsumeBytes(b); n < 0 {
				return nil, false
			}
			m.Content = cloneNonEmpty(v)
			b = b[n:]
			continue
		}
		if typ != protowire.VarintType {
			return nil, false
		}
		var v uint64
		if v, n = protowire.ConsumeVarint(b); n < 0 {
			return nil, false
		}
		b = b[n:]
		switch num {
		case 1:
			m.DeviceId = uint32(v)
		case 2:
			m.RegistrationId = uint32(v)
		case 3:
			m.Type = uint32(v)
		}
	}
	return m, true
}

func decodeAck(b []byte) (*AckRequest, bool) {
	r := &AckRequest{}
	seenQuiet := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		if num == 2 && typ == protowire.VarintType && !seenQuiet {
			var v uint64
			if v, n = protowire.ConsumeVarint(b); n < 0 {
				return nil, false
			}
			b = b[n:]
			r.Quiet, seenQuiet = v != 0, true
			continue
		}
		if num != 1 || typ != protowire.BytesType {
			return nil, false
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		r.EnvelopeIds = append(r.EnvelopeIds, append([]byte{}, v...))
	}
	return r, true
}

// cloneNonEmpty copies v the way generated code stores a proto3 bytes
// field: nil when empty.
func cloneNonEmpty(v []byte) []byte {
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// Field tags used by the encoders below.
const (
	tagVersion  = 1<<3 | uint64(protowire.VarintType)
	tagResponse = 3<<3 | uint64(protowire.BytesType)
	tagPush     = 4<<3 | uint64(protowire.BytesType)
)

// appendFrameHead appends the Frame's version and the tag and length of
// its kind field (response or push).
func appendFrameHead(b []byte, kindTag uint64, n int) []byte {
	b = protowire.AppendVarint(b, tagVersion)
	b = protowire.AppendVarint(b, uint64(Version))
	b = protowire.AppendVarint(b, kindTag)
	return protowire.AppendVarint(b, uint64(n))
}

func sizeBytesField(num protowire.Number, n int) int {
	if n == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func sizeVarintField(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func appendBytesField(b []byte, num protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendStringField(b []byte, num protowire.Number, v string) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, v)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// AppendEnvelopePush appends to b the Frame that pushes e, as AppendFrame
// would encode it, and reports ErrFrameTooLarge like AppendFrame.
func AppendEnvelopePush(b []byte, e *Envelope) ([]byte, error) {
	envSize := sizeBytesField(1, len(e.Id)) + sizeBytesField(2, len(e.Sender)) +
		sizeVarintField(3, uint64(e.SenderDevice)) + sizeVarintField(4, uint64(e.ServerTimestampMs)) +
		sizeVarintField(5, uint64(e.Type)) + sizeBytesField(6, len(e.Content)) + sizeBytesField(7, len(e.MessageId))
	pushSize := protowire.SizeTag(2) + protowire.SizeBytes(envSize)
	if 2+protowire.SizeTag(4)+protowire.SizeBytes(pushSize) > MaxFrameSize {
		return b, ErrFrameTooLarge
	}
	b = appendFrameHead(b, tagPush, pushSize)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(envSize))
	b = appendBytesField(b, 1, e.Id)
	b = appendStringField(b, 2, e.Sender)
	b = appendVarintField(b, 3, uint64(e.SenderDevice))
	b = appendVarintField(b, 4, uint64(e.ServerTimestampMs))
	b = appendVarintField(b, 5, uint64(e.Type))
	b = appendBytesField(b, 6, e.Content)
	b = appendBytesField(b, 7, e.MessageId)
	return b, nil
}

// AppendSendMessageResponse appends the Frame answering SendMessage
// request id with r.
func AppendSendMessageResponse(b []byte, id uint64, r *SendMessageResponse) []byte {
	return appendSendResponse(b, id, 17, r)
}

// AppendSealedSendResponse appends the Frame answering SealedSend request
// id with r.
func AppendSealedSendResponse(b []byte, id uint64, r *SendMessageResponse) []byte {
	return appendSendResponse(b, id, 92, r)
}

func appendSendResponse(b []byte, id uint64, field protowire.Number, r *SendMessageResponse) []byte {
	dup := uint64(0)
	if r.Duplicate {
		dup = 1
	}
	bodySize := sizeVarintField(1, uint64(r.ServerTimestampMs)) + sizeVarintField(2, dup)
	respSize := sizeVarintField(1, id) + protowire.SizeTag(field) + protowire.SizeBytes(bodySize)
	b = appendFrameHead(b, tagResponse, respSize)
	b = appendVarintField(b, 1, id)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(bodySize))
	b = appendVarintField(b, 1, uint64(r.ServerTimestampMs))
	return appendVarintField(b, 2, dup)
}

// AppendAckResponse appends the Frame answering Ack request id.
func AppendAckResponse(b []byte, id uint64) []byte {
	respSize := sizeVarintField(1, id) + protowire.SizeTag(18) + protowire.SizeBytes(0)
	b = appendFrameHead(b, tagResponse, respSize)
	b = appendVarintField(b, 1, id)
	b = protowire.AppendTag(b, 18, protowire.BytesType)
	return protowire.AppendVarint(b, 0)
}
