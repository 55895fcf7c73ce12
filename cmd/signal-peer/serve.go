package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"sotto/signal/fingerprint"
	"sotto/signal/keys"
	"sotto/signal/sealed"
	"sotto/signal/session"
)

// maxRequest bounds one request line.
const maxRequest = 16 << 20

// serve answers requests from in on out until in ends or ctx is done.
func (p *peer) serve(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxRequest)
	w := bufio.NewWriter(out)
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		line := sc.Bytes()
		if strings.TrimSpace(string(line)) == "" {
			continue
		}
		reply := p.handle(ctx, line)
		if _, err := w.Write(append(reply, '\n')); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read requests: %w", err)
	}
	return nil
}

// kindError is a failure with its protocol error kind.
type kindError struct {
	kind string
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

func badArg(format string, a ...any) error {
	return &kindError{kind: "invalid_argument", err: fmt.Errorf(format, a...)}
}

// errorKinds maps the session and fingerprint errors to the protocol's error kinds,
// in order of precedence.
var errorKinds = []struct {
	err  error
	kind string
}{
	{sealed.ErrIdentityMismatch, "untrusted_identity"},
	{sealed.ErrUntrustedCertificate, "invalid_certificate"},
	{sealed.ErrExpiredCertificate, "invalid_certificate"},
	{sealed.ErrKeyMismatch, "invalid_message"},
	{sealed.ErrSelfSend, "invalid_message"},
	{sealed.ErrUnknownVersion, "invalid_message"},
	{sealed.ErrInvalidMessage, "invalid_message"},
	{session.ErrDuplicateMessage, "duplicate_message"},
	{session.ErrUntrustedIdentity, "untrusted_identity"},
	{session.ErrNoSession, "no_session"},
	{session.ErrStaleSession, "no_session"},
	{session.ErrInvalidKeyID, "invalid_key_id"},
	{session.ErrInvalidMessage, "invalid_message"},
	{session.ErrBadSignature, "invalid_argument"},
	{keys.ErrInvalidKey, "invalid_argument"},
	{fingerprint.ErrInvalid, "invalid_argument"},
}

func kindOf(err error) string {
	var ke *kindError
	if errors.As(err, &ke) {
		return ke.kind
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return "internal"
}

// request holds every argument any operation takes. Byte fields are base64 in JSON.
type request struct {
	Op             string  `json:"op"`
	Name           string  `json:"name"`
	RegistrationID *int64  `json:"registration_id"`
	DeviceID       *int64  `json:"device_id"`
	PreKeys        *int64  `json:"prekeys"`
	OneTime        *bool   `json:"one_time"`
	Peer           string  `json:"peer"`
	PeerDeviceID   *int64  `json:"peer_device_id"`
	Bundle         *bundle `json:"bundle"`
	Plaintext      []byte  `json:"plaintext"`
	Type           *int64  `json:"type"`
	Ciphertext     []byte  `json:"ciphertext"`
	LocalID        []byte  `json:"local_id"`
	RemoteID       []byte  `json:"remote_id"`
	Iterations     *int64  `json:"iterations"`
	Version        *int64  `json:"version"`
	sealedArgs
}

// bundle is a prekey bundle as the protocol carries it.
type bundle struct {
	RegistrationID        uint32  `json:"registration_id"`
	DeviceID              uint32  `json:"device_id"`
	IdentityKey           []byte  `json:"identity_key"`
	SignedPreKeyID        uint32  `json:"signed_prekey_id"`
	SignedPreKey          []byte  `json:"signed_prekey"`
	SignedPreKeySignature []byte  `json:"signed_prekey_signature"`
	KyberPreKeyID         uint32  `json:"kyber_prekey_id"`
	KyberPreKey           []byte  `json:"kyber_prekey"`
	KyberPreKeySignature  []byte  `json:"kyber_prekey_signature"`
	PreKeyID              *uint32 `json:"prekey_id,omitempty"`
	PreKey                []byte  `json:"prekey,omitempty"`
}

// intArg returns *v, or def when v is nil; it fails outside min..max.
func intArg(name string, v *int64, def, min, max int64) (int64, error) {
	if v == nil {
		return def, nil
	}
	if *v < min || *v > max {
		return 0, badArg("%s: want an integer in %d..%d", name, min, max)
	}
	return *v, nil
}

// handle answers one request line with one reply line.
func (p *peer) handle(ctx context.Context, line []byte) []byte {
	var head struct {
		ID json.RawMessage `json:"id"`
	}
	id := json.RawMessage("null")
	if err := json.Unmarshal(line, &head); err != nil {
		return reply(id, nil, badArg("request is not a JSON object: %v", err))
	}
	if len(head.ID) > 0 {
		id = head.ID
	}
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return reply(id, nil, badArg("request: %v", err))
	}
	op, ok := p.ops[req.Op]
	if !ok {
		return reply(id, nil, badArg("unknown op %q", req.Op))
	}
	res, err := op(ctx, &req)
	return reply(id, res, err)
}

// reply encodes {"id", "ok", ...results} or {"id", "ok": false, "error": "KIND: detail"}.
func reply(id json.RawMessage, res map[string]any, err error) []byte {
	out := map[string]any{"id": id}
	if err != nil {
		out["ok"] = false
		out["error"] = kindOf(err) + ": " + strings.ReplaceAll(err.Error(), "\n", " ")
	} else {
		for k, v := range res {
			out[k] = v
		}
		out["ok"] = true
	}
	b, merr := json.Marshal(out)
	if merr != nil {
		b, _ = json.Marshal(map[string]any{"id": id, "ok": false, "error": "internal: encode reply: " + merr.Error()})
	}
	return b
}
