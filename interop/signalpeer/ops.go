package signalpeer

import (
	"context"
	"fmt"
)

// Address names one device of one user. A zero DeviceID leaves the device to the
// peer's default (the only device of that name, or device 1).
type Address struct {
	Name     string
	DeviceID uint32
}

func (a Address) String() string { return fmt.Sprintf("%s.%d", a.Name, a.DeviceID) }

// Bundle is a prekey bundle as the protocol carries it. Byte fields are serialized keys
// (type byte first) and signatures.
type Bundle struct {
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

// Message types.
const (
	TypeSignal = 2 // SignalMessage
	TypePreKey = 3 // PreKeySignalMessage
)

// Message is a ciphertext with its type.
type Message struct {
	Type       int    `json:"type"`
	Ciphertext []byte `json:"ciphertext"`
}

// Fingerprint is a safety number in both forms.
type Fingerprint struct {
	Displayable string `json:"displayable"`
	Scannable   []byte `json:"scannable"`
}

// CreateOptions are the optional arguments of Create.
type CreateOptions struct {
	DeviceID uint32 // default 1
	PreKeys  *int   // default 10
}

func local(a Address) map[string]any {
	m := map[string]any{"name": a.Name}
	if a.DeviceID != 0 {
		m["device_id"] = a.DeviceID
	}
	return m
}

func pair(l, r Address) map[string]any {
	m := local(l)
	m["peer"] = r.Name
	if r.DeviceID != 0 {
		m["peer_device_id"] = r.DeviceID
	}
	return m
}

// Create makes a party (one device of one user) and returns its identity key.
func (p *Peer) Create(ctx context.Context, a Address, registrationID uint32, prekeys int) ([]byte, error) {
	args := map[string]any{"name": a.Name, "registration_id": registrationID, "prekeys": prekeys}
	if a.DeviceID != 0 {
		args["device_id"] = a.DeviceID
	}
	var out struct {
		IdentityKey []byte `json:"identity_key"`
	}
	if err := p.Call(ctx, "create", args, &out); err != nil {
		return nil, err
	}
	return out.IdentityKey, nil
}

// Bundle hands out a prekey bundle of party a: with oneTime a fresh one-time EC and
// Kyber prekey, without it no EC prekey and the last-resort Kyber prekey.
func (p *Peer) Bundle(ctx context.Context, a Address, oneTime bool) (*Bundle, error) {
	args := local(a)
	args["one_time"] = oneTime
	var b Bundle
	if err := p.Call(ctx, "bundle", args, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// ProcessBundle starts a session from l to r with r's bundle.
func (p *Peer) ProcessBundle(ctx context.Context, l, r Address, b *Bundle) error {
	args := pair(l, r)
	args["bundle"] = b
	return p.Call(ctx, "process_bundle", args, nil)
}

// Encrypt encrypts plaintext from l to r.
func (p *Peer) Encrypt(ctx context.Context, l, r Address, plaintext []byte) (Message, error) {
	args := pair(l, r)
	args["plaintext"] = plaintext
	var m Message
	err := p.Call(ctx, "encrypt", args, &m)
	return m, err
}

// Decrypt decrypts a message that r sent to l.
func (p *Peer) Decrypt(ctx context.Context, l, r Address, m Message) ([]byte, error) {
	args := pair(l, r)
	args["type"] = m.Type
	args["ciphertext"] = m.Ciphertext
	var out struct {
		Plaintext []byte `json:"plaintext"`
	}
	if err := p.Call(ctx, "decrypt", args, &out); err != nil {
		return nil, err
	}
	if out.Plaintext == nil {
		out.Plaintext = []byte{}
	}
	return out.Plaintext, nil
}

// FingerprintOf computes the safety number between l and the stored identity key of
// the user r.Name, with libsignal's defaults (version 2, 5200 iterations).
func (p *Peer) FingerprintOf(ctx context.Context, l, r Address, localID, remoteID []byte) (*Fingerprint, error) {
	args := local(l)
	args["peer"] = r.Name
	if r.DeviceID != 0 {
		args["peer_device_id"] = r.DeviceID
	}
	args["local_id"] = localID
	args["remote_id"] = remoteID
	var f Fingerprint
	if err := p.Call(ctx, "fingerprint", args, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// HasSession reports whether l has a usable session with r.
func (p *Peer) HasSession(ctx context.Context, l, r Address) (bool, error) {
	var out struct {
		Exists bool `json:"exists"`
	}
	err := p.Call(ctx, "has_session", pair(l, r), &out)
	return out.Exists, err
}

// Trust makes l accept the current identity key of the user r.Name after a change.
func (p *Peer) Trust(ctx context.Context, l, r Address) error {
	args := local(l)
	args["peer"] = r.Name
	return p.Call(ctx, "trust", args, nil)
}
