package main

import (
	"encoding/binary"
	"errors"

	"google.golang.org/protobuf/encoding/protowire"

	"sotto/wire"
)

// The hot path encodes SendMessage and Ack requests and decodes
// responses and envelope pushes directly in the protobuf wire format of
// wire.proto, without allocating: each frame is appended to the
// connection's write buffer, and incoming frames are parsed in place.
// frames_test.go checks both directions against the generated code.
// Setup frames (challenge, enrollment, login) use the generated code.

// Field numbers from wire/wire.proto.
const (
	fFrameVersion  = 1
	fFrameRequest  = 2
	fFrameResponse = 3
	fFramePush     = 4

	fReqID     = 1
	fReqSend   = 17
	fReqAck    = 18
	fReqSealed = 92

	fSendRecipient = 1
	fSendMessages  = 2
	fSendMessageID = 3
	fSendAccessKey = 4 // SealedSendRequest only

	fOutDevice  = 1
	fOutReg     = 2
	fOutType    = 3
	fOutContent = 4

	fAckIDs   = 1
	fAckQuiet = 2

	fRespID         = 1
	fRespCode       = 2
	fRespMessage    = 3
	fRespRetryAfter = 5
	fRespSend       = 17
	fRespAck        = 18
	fRespSealed     = 92

	fSendRespDuplicate = 2

	fPushChallenge  = 1
	fPushEnvelope   = 2
	fPushQueueEmpty = 3

	fEnvID           = 1
	fEnvSender       = 2
	fEnvSenderDevice = 3
	fEnvContent      = 6
	fEnvMessageID    = 7
)

// payloadHeader is the generator's header at the start of every
// payload: send time (ns since the run started), sender index, sequence
// number.
const payloadHeader = 20

// messageIDSize is the size of the client message id: the sender's
// index (4 bytes), a per-run random value (4) and the sequence number (8).
const messageIDSize = 16

func sizeVarintField(num protowire.Number, v uint64) int {
	if v == 0 {
		return 0 // proto3 omits zero scalars
	}
	return protowire.SizeTag(num) + protowire.SizeVarint(v)
}

func sizeBytesField(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendLenPrefix(b []byte, num protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

// sendSpec is what is fixed about one sender's SendMessage requests.
type sendSpec struct {
	recipient string
	deviceID  uint32
	regID     uint32
	sender    uint32 // sender index, in the payload and message id
	runTag    uint32 // per-run value in the message id
	filler    []byte // payload bytes after the header (len = size - payloadHeader)
	// accessKey set: a SealedSend (of type wire.EnvelopeTypeSealed) with
	// the recipient's access key; else a SendMessage of type 1.
	accessKey []byte
}

// appendSend appends a complete masked WebSocket frame carrying a
// SendMessage request (a SealedSend when s.accessKey is set) to w.out.
// Call with w.mu held.
func (w *wsConn) appendSend(reqID uint64, s *sendSpec, seq uint64, sentNanos int64) {
	reqField, typ := protowire.Number(fReqSend), uint64(1)
	keyField := 0
	if s.accessKey != nil {
		reqField, typ = fReqSealed, wire.EnvelopeTypeSealed
		keyField = sizeBytesField(fSendAccessKey, len(s.accessKey))
	}
	contentLen := payloadHeader + len(s.filler)
	om := sizeVarintField(fOutDevice, uint64(s.deviceID)) + sizeVarintField(fOutReg, uint64(s.regID)) +
		sizeVarintField(fOutType, typ) + sizeBytesField(fOutContent, contentLen)
	sm := sizeBytesField(fSendRecipient, len(s.recipient)) + sizeBytesField(fSendMessages, om) +
		sizeBytesField(fSendMessageID, messageIDSize) + keyField
	req := sizeVarintField(fReqID, reqID) + sizeBytesField(reqField, sm)
	frame := sizeVarintField(fFrameVersion, uint64(wire.Version)) + sizeBytesField(fFrameRequest, req)

	at := w.appendHeader(opBinary, frame)
	b := appendVarintField(w.out, fFrameVersion, uint64(wire.Version))
	b = appendLenPrefix(b, fFrameRequest, req)
	b = appendVarintField(b, fReqID, reqID)
	b = appendLenPrefix(b, reqField, sm)
	b = appendLenPrefix(b, fSendRecipient, len(s.recipient))
	b = append(b, s.recipient...)
	b = appendLenPrefix(b, fSendMessages, om)
	b = appendVarintField(b, fOutDevice, uint64(s.deviceID))
	b = appendVarintField(b, fOutReg, uint64(s.regID))
	b = appendVarintField(b, fOutType, typ)
	b = appendLenPrefix(b, fOutContent, contentLen)
	b = binary.BigEndian.AppendUint64(b, uint64(sentNanos))
	b = binary.BigEndian.AppendUint32(b, s.sender)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, s.filler...)
	b = appendLenPrefix(b, fSendMessageID, messageIDSize)
	b = binary.BigEndian.AppendUint32(b, s.sender)
	b = binary.BigEndian.AppendUint32(b, s.runTag)
	b = binary.BigEndian.AppendUint64(b, seq)
	if s.accessKey != nil {
		b = appendLenPrefix(b, fSendAccessKey, len(s.accessKey))
		b = append(b, s.accessKey...)
	}
	w.out = b
	w.maskFrom(at)
}

// envelopeIDSize is the size of the relay's envelope ids.
const envelopeIDSize = 16

// appendAck appends a complete masked WebSocket frame carrying an
// AckRequest for ids (quiet: the relay answers only a failure) to w.out.
// Call with w.mu held.
func (w *wsConn) appendAck(reqID uint64, ids [][envelopeIDSize]byte, quiet bool) {
	q := uint64(0)
	if quiet {
		q = 1
	}
	ack := len(ids)*sizeBytesField(fAckIDs, envelopeIDSize) + sizeVarintField(fAckQuiet, q)
	req := sizeVarintField(fReqID, reqID) + sizeBytesField(fReqAck, ack)
	frame := sizeVarintField(fFrameVersion, uint64(wire.Version)) + sizeBytesField(fFrameRequest, req)
	at := w.appendHeader(opBinary, frame)
	b := appendVarintField(w.out, fFrameVersion, uint64(wire.Version))
	b = appendLenPrefix(b, fFrameRequest, req)
	b = appendVarintField(b, fReqID, reqID)
	b = appendLenPrefix(b, fReqAck, ack)
	for i := range ids {
		b = appendLenPrefix(b, fAckIDs, envelopeIDSize)
		b = append(b, ids[i][:]...)
	}
	b = appendVarintField(b, fAckQuiet, q)
	w.out = b
	w.maskFrom(at)
}

// frameKind says what a decoded hot-path frame is.
type frameKind uint8

const (
	kindOther    frameKind = iota // a push the load generator ignores
	kindResponse                  // a Response
	kindEnvelope                  // an Envelope push
)

// hotFrame is a frame decoded in place: byte slices point into the
// received payload and are valid only until the next read.
type hotFrame struct {
	kind frameKind

	// Response.
	id           uint64
	code         wire.ErrorCode
	message      []byte
	retryAfterMs int64
	body         protowire.Number // fRespSend (SendMessage or SealedSend), fRespAck or 0
	duplicate    bool

	// Envelope.
	envID        []byte
	sender       []byte
	senderDevice uint32
	content      []byte
	messageID    []byte
}

var errHotMalformed = errors.New("sotto-load: malformed frame from the relay")

// fields calls fn for each field of the protobuf message b; fn gets the
// varint value (p nil) or the bytes of a length-delimited field (p not
// nil). Other wire types are skipped. Like proto.Unmarshal, a repeated
// singular field counts with its last value, and a field of the wrong
// wire type is ignored (the callers check p).
func fields(b []byte, fn func(num protowire.Number, v uint64, p []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errHotMalformed
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errHotMalformed
			}
			b = b[n:]
			if err := fn(num, v, nil); err != nil {
				return err
			}
		case protowire.BytesType:
			p, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errHotMalformed
			}
			b = b[n:]
			if err := fn(num, 0, p); err != nil {
				return err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errHotMalformed
			}
			b = b[n:]
		}
	}
	return nil
}

// parseHot decodes a frame received from the relay into f.
func parseHot(b []byte, f *hotFrame) error {
	*f = hotFrame{}
	var version uint64
	var resp, push []byte
	haveResp, havePush := false, false
	err := fields(b, func(num protowire.Number, v uint64, p []byte) error {
		switch {
		case num == fFrameVersion && p == nil:
			version = v
		case num == fFrameResponse && p != nil:
			resp, haveResp, havePush = p, true, false
		case num == fFramePush && p != nil:
			push, havePush, haveResp = p, true, false
		case num == fFrameRequest && p != nil:
			haveResp, havePush = false, false
		}
		return nil
	})
	if err != nil {
		return err
	}
	if version != uint64(wire.Version) {
		return &wire.VersionError{Got: uint32(version)}
	}
	switch {
	case haveResp:
		f.kind = kindResponse
		return fields(resp, f.responseField)
	case havePush:
		return fields(push, func(num protowire.Number, v uint64, p []byte) error {
			switch {
			case p == nil:
			case num == fPushEnvelope:
				f.kind = kindEnvelope
				f.envID, f.sender, f.senderDevice, f.content, f.messageID = nil, nil, 0, nil, nil
				return fields(p, f.envelopeField)
			case num == fPushChallenge || num == fPushQueueEmpty:
				f.kind = kindOther
			}
			return nil
		})
	}
	return wire.ErrEmptyFrame
}

func (f *hotFrame) responseField(num protowire.Number, v uint64, p []byte) error {
	if !wantBytes(num, fRespMessage, fRespSend, fRespAck, fRespSealed) {
		if p != nil {
			return nil
		}
	} else if p == nil {
		return nil
	}
	switch num {
	case fRespID:
		f.id = v
	case fRespCode:
		f.code = wire.ErrorCode(int32(v))
	case fRespMessage:
		f.message = p
	case fRespRetryAfter:
		f.retryAfterMs = int64(v)
	case fRespSend, fRespSealed:
		f.body, f.duplicate = fRespSend, false
		return fields(p, func(num protowire.Number, v uint64, p []byte) error {
			if num == fSendRespDuplicate && p == nil {
				f.duplicate = v != 0
			}
			return nil
		})
	case fRespAck:
		f.body = fRespAck
	}
	return nil
}

func (f *hotFrame) envelopeField(num protowire.Number, v uint64, p []byte) error {
	if (num == fEnvSenderDevice) != (p == nil) {
		return nil // the wrong wire type
	}
	switch num {
	case fEnvID:
		f.envID = p
	case fEnvSender:
		f.sender = p
	case fEnvSenderDevice:
		f.senderDevice = uint32(v)
	case fEnvContent:
		f.content = p
	case fEnvMessageID:
		f.messageID = p
	}
	return nil
}

// wantBytes reports whether num is one of the length-delimited fields.
func wantBytes(num protowire.Number, bytesFields ...protowire.Number) bool {
	for _, b := range bytesFields {
		if num == b {
			return true
		}
	}
	return false
}
