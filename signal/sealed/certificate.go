package sealed

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"sotto/signal/keys"
)

// Errors callers branch on with errors.Is.
var (
	// ErrInvalidMessage reports a malformed sealed message or certificate,
	// or one whose MAC does not verify (tampered, or not for this recipient).
	ErrInvalidMessage = errors.New("sealed: invalid message")
	// ErrUnknownVersion reports a sealed message of a version this package
	// does not read (version 2, multi-recipient, is not implemented).
	ErrUnknownVersion = errors.New("sealed: unknown sealed sender version")
	// ErrUntrustedCertificate reports a sender certificate whose server
	// certificate was not signed by the trust root (or was revoked), or
	// whose own signature does not verify.
	ErrUntrustedCertificate = errors.New("sealed: sender certificate not signed by the trust root")
	// ErrExpiredCertificate reports a sender certificate past its expiry.
	ErrExpiredCertificate = errors.New("sealed: sender certificate expired")
	// ErrKeyMismatch is libsignal's "sender certificate key does not match
	// message key": the certificate names another identity key than the one
	// the static layer was encrypted with.
	ErrKeyMismatch = errors.New("sealed: sender certificate key does not match message key")
	// ErrIdentityMismatch reports a certificate whose identity key differs
	// from the identity key the recipient holds for that sender: a forged
	// sender (or a key change the user has not accepted).
	ErrIdentityMismatch = errors.New("sealed: sender certificate identity key differs from the identity key held for the sender")
	// ErrSelfSend reports a sealed message that claims to come from the
	// recipient device itself.
	ErrSelfSend = errors.New("sealed: message from this very device")
)

// revokedServerKeyIDs are libsignal's revoked server certificate ids.
var revokedServerKeyIDs = []uint32{0xDEADC357}

// ServerCertificate binds a server key (with an id) to a trust root
// signature, as libsignal's ServerCertificate.
type ServerCertificate struct {
	KeyID       uint32
	Key         keys.PublicKey
	certificate []byte
	signature   []byte
	serialized  []byte
}

// NewServerCertificate signs (keyID, key) with the trust root's private key.
func NewServerCertificate(rand io.Reader, keyID uint32, key keys.PublicKey, trustRoot keys.PrivateKey) (*ServerCertificate, error) {
	var cert []byte
	cert = appendVarintField(cert, 1, uint64(keyID))
	cert = appendBytesField(cert, 2, key.Serialize())
	sig, err := trustRoot.Sign(rand, cert)
	if err != nil {
		return nil, fmt.Errorf("sealed: signing server certificate: %w", err)
	}
	return &ServerCertificate{
		KeyID: keyID, Key: key, certificate: cert, signature: sig,
		serialized: appendSigned(cert, sig),
	}, nil
}

func appendSigned(cert, sig []byte) []byte {
	var b []byte
	b = appendBytesField(b, 1, cert)
	return appendBytesField(b, 2, sig)
}

// parseSigned decodes the outer {certificate = 1, signature = 2} both
// certificate kinds share; both fields are required.
func parseSigned(b []byte) (cert, sig []byte, err error) {
	f, ok := decodeFields(b, map[protowire.Number]protowire.Type{1: protowire.BytesType, 2: protowire.BytesType})
	if !ok || f[1] == nil || f[2] == nil {
		return nil, nil, fmt.Errorf("%w: certificate encoding", ErrInvalidMessage)
	}
	return f[1].bytes, f[2].bytes, nil
}

// ParseServerCertificate decodes a serialized server certificate. It does
// not check the signature: Validate does.
func ParseServerCertificate(b []byte) (*ServerCertificate, error) {
	cert, sig, err := parseSigned(b)
	if err != nil {
		return nil, err
	}
	f, ok := decodeFields(cert, map[protowire.Number]protowire.Type{1: protowire.VarintType, 2: protowire.BytesType})
	if !ok || f[1] == nil || f[2] == nil {
		return nil, fmt.Errorf("%w: server certificate encoding", ErrInvalidMessage)
	}
	key, err := keys.ParsePublicKey(f[2].bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: server certificate key: %w", ErrInvalidMessage, err)
	}
	return &ServerCertificate{
		KeyID: uint32(f[1].num), Key: key,
		certificate: slices.Clone(cert), signature: slices.Clone(sig), serialized: slices.Clone(b),
	}, nil
}

// Serialize returns the certificate's encoding.
func (c *ServerCertificate) Serialize() []byte { return slices.Clone(c.serialized) }

// Validate reports whether the trust root signed the certificate and its id
// is not revoked.
func (c *ServerCertificate) Validate(trustRoot keys.PublicKey) bool {
	if slices.Contains(revokedServerKeyIDs, c.KeyID) {
		return false
	}
	return trustRoot.Verify(c.signature, c.certificate)
}

// SenderCertificate names a sender (a UUID string in Signal; a Sotto
// account name here), its device and identity key, until an expiry, signed
// by a server key whose ServerCertificate it embeds.
type SenderCertificate struct {
	Sender      string // libsignal's sender_uuid
	E164        string // optional; "" when absent
	DeviceID    uint32
	Expires     time.Time // millisecond precision
	IdentityKey keys.PublicKey
	// Signer is the embedded server certificate. A certificate that names
	// its signer only by id (libsignal's known production certificates)
	// has Signer nil and SignerID set; it never validates here.
	Signer   *ServerCertificate
	SignerID uint32

	certificate []byte
	signature   []byte
	serialized  []byte
}

// MaxDeviceID is the highest device id libsignal's DeviceId allows.
const MaxDeviceID = 127

// NewSenderCertificate makes and signs a sender certificate, as libsignal's
// SenderCertificate::new (the sender as a UUID string field).
func NewSenderCertificate(rand io.Reader, sender, e164 string, identityKey keys.PublicKey, deviceID uint32, expires time.Time, signer *ServerCertificate, signerKey keys.PrivateKey) (*SenderCertificate, error) {
	if deviceID < 1 || deviceID > MaxDeviceID {
		return nil, fmt.Errorf("sealed: device id %d outside 1..%d", deviceID, MaxDeviceID)
	}
	if signer == nil {
		return nil, errors.New("sealed: sender certificate needs a server certificate")
	}
	ms := uint64(expires.UnixMilli())
	// prost encodes fields in tag order; the oneofs sort by their lowest tag.
	var cert []byte
	if e164 != "" {
		cert = appendBytesField(cert, 1, []byte(e164))
	}
	cert = appendVarintField(cert, 2, uint64(deviceID))
	cert = protowire.AppendTag(cert, 3, protowire.Fixed64Type)
	cert = protowire.AppendFixed64(cert, ms)
	cert = appendBytesField(cert, 4, identityKey.Serialize())
	cert = appendBytesField(cert, 5, signer.serialized)
	cert = appendBytesField(cert, 6, []byte(sender))
	sig, err := signerKey.Sign(rand, cert)
	if err != nil {
		return nil, fmt.Errorf("sealed: signing sender certificate: %w", err)
	}
	return &SenderCertificate{
		Sender: sender, E164: e164, DeviceID: deviceID, Expires: time.UnixMilli(int64(ms)),
		IdentityKey: identityKey, Signer: signer,
		certificate: cert, signature: sig, serialized: appendSigned(cert, sig),
	}, nil
}

// ParseSenderCertificate decodes a serialized sender certificate with
// libsignal's checks on its fields. It does not check signatures or expiry:
// Validate does.
func ParseSenderCertificate(b []byte) (*SenderCertificate, error) {
	cert, sig, err := parseSigned(b)
	if err != nil {
		return nil, err
	}
	f, ok := decodeFields(cert, map[protowire.Number]protowire.Type{
		1: protowire.BytesType, 2: protowire.VarintType, 3: protowire.Fixed64Type,
		4: protowire.BytesType, 5: protowire.BytesType, 6: protowire.BytesType,
		7: protowire.BytesType, 8: protowire.VarintType,
	})
	bad := func(what string) error { return fmt.Errorf("%w: sender certificate %s", ErrInvalidMessage, what) }
	if !ok {
		return nil, bad("encoding")
	}
	c := &SenderCertificate{certificate: slices.Clone(cert), signature: slices.Clone(sig), serialized: slices.Clone(b)}
	if f[2] == nil || uint32(f[2].num) < 1 || uint32(f[2].num) > MaxDeviceID {
		return nil, bad("device id")
	}
	c.DeviceID = uint32(f[2].num)
	if f[3] == nil {
		return nil, bad("expiry")
	}
	c.Expires = time.UnixMilli(int64(f[3].num))
	switch oneofLast(cert, 5, 8) {
	case 5:
		if c.Signer, err = ParseServerCertificate(f[5].bytes); err != nil {
			return nil, err
		}
	case 8:
		c.SignerID = uint32(f[8].num)
	default:
		return nil, bad("signer")
	}
	switch oneofLast(cert, 6, 7) {
	case 6:
		c.Sender = string(f[6].bytes)
	case 7:
		u := f[7].bytes
		if len(u) != 16 {
			return nil, bad("uuid")
		}
		c.Sender = fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	default:
		return nil, bad("sender")
	}
	if f[1] != nil {
		c.E164 = string(f[1].bytes)
	}
	if f[4] == nil {
		return nil, bad("identity key")
	}
	if c.IdentityKey, err = keys.ParsePublicKey(f[4].bytes); err != nil {
		return nil, fmt.Errorf("%w: sender certificate identity key: %w", ErrInvalidMessage, err)
	}
	return c, nil
}

// Serialize returns the certificate's encoding.
func (c *SenderCertificate) Serialize() []byte { return slices.Clone(c.serialized) }

// Validate checks the certificate as libsignal's validate: the embedded
// server certificate is signed by trustRoot and not revoked, the server key
// signed this certificate, and now is not past the expiry.
func (c *SenderCertificate) Validate(trustRoot keys.PublicKey, now time.Time) error {
	return c.ValidateWithTrustRoots([]keys.PublicKey{trustRoot}, now)
}

// ValidateWithTrustRoots is Validate with several acceptable trust roots,
// each tried (without stopping early, as libsignal does).
func (c *SenderCertificate) ValidateWithTrustRoots(roots []keys.PublicKey, now time.Time) error {
	if c.Signer == nil {
		return fmt.Errorf("%w: unknown server certificate id %d", ErrUntrustedCertificate, c.SignerID)
	}
	valid := 0
	for _, r := range roots {
		ok := 0
		if c.Signer.Validate(r) {
			ok = 1
		}
		valid |= ok
	}
	if subtle.ConstantTimeEq(int32(valid), 1) != 1 {
		return fmt.Errorf("%w: server certificate", ErrUntrustedCertificate)
	}
	if !c.Signer.Key.Verify(c.signature, c.certificate) {
		return fmt.Errorf("%w: not signed by the server key", ErrUntrustedCertificate)
	}
	if now.UnixMilli() > c.Expires.UnixMilli() {
		return fmt.Errorf("%w: at %d, expired %d", ErrExpiredCertificate, now.UnixMilli(), c.Expires.UnixMilli())
	}
	return nil
}
