package groups

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"sotto/mls"
	"sotto/orgcert"
	"sotto/signal/keys"
)

// A member's MLS credential is a basic credential whose identity is a
// Sotto leaf identity: who the device is (username, device number), the
// account's identity key with the organization's certificate for it
// (orgcert: org key -> grant -> invitation key -> identity key), and the
// identity key's XEdDSA signature binding the leaf's MLS signature key to
// that device. Every member checks the whole chain against the org key it
// pinned from its own invitation for every leaf that enters the group, so
// a leaf the relay (or anybody without the organization's certificate)
// made up is refused.

const credentialVersion = 1

// leafDomain prefixes what the identity key signs for a leaf.
const leafDomain = "sotto mls leaf v1\x00"

// ErrNotCertified is returned for a leaf whose credential is not an
// org-certified identity: a ghost.
var ErrNotCertified = errors.New("groups: member credential is not certified by the organization")

// Identity is a parsed leaf identity.
type Identity struct {
	Username    string
	DeviceID    uint32
	IdentityKey []byte // serialized (libsignal form)
	Certificate []byte // orgcert identity certificate
	Binding     []byte // identity key's signature over the leaf's MLS signature key
}

// Limits of an encoded identity.
const (
	maxUsername    = 64
	maxIdentityKey = 64
	maxCertificate = 8 << 10
	maxBinding     = 128
)

func bindingTranscript(username string, device uint32, sigKey []byte) []byte {
	var b cryptobyte.Builder
	b.AddBytes([]byte(leafDomain))
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(username)) })
	b.AddUint32(device)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sigKey) })
	return b.BytesOrPanic()
}

// encodeIdentity encodes id for a basic credential.
func encodeIdentity(id *Identity) ([]byte, error) {
	if len(id.Username) == 0 || len(id.Username) > maxUsername || len(id.IdentityKey) > maxIdentityKey ||
		len(id.Certificate) > maxCertificate || len(id.Binding) > maxBinding {
		return nil, fmt.Errorf("groups: identity fields out of bounds")
	}
	var b cryptobyte.Builder
	b.AddUint8(credentialVersion)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(id.Username)) })
	b.AddUint32(id.DeviceID)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(id.IdentityKey) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(id.Certificate) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(id.Binding) })
	return b.Bytes()
}

// ParseIdentity decodes a basic credential's identity (untrusted bytes).
func ParseIdentity(b []byte) (*Identity, error) {
	s := cryptobyte.String(b)
	var v uint8
	var user, ik, cert, bind cryptobyte.String
	id := &Identity{}
	if !s.ReadUint8(&v) || v != credentialVersion ||
		!s.ReadUint8LengthPrefixed(&user) || !s.ReadUint32(&id.DeviceID) ||
		!s.ReadUint16LengthPrefixed(&ik) || !s.ReadUint16LengthPrefixed(&cert) || !s.ReadUint16LengthPrefixed(&bind) || !s.Empty() {
		return nil, fmt.Errorf("%w: malformed identity", ErrNotCertified)
	}
	if len(user) == 0 || len(user) > maxUsername || len(ik) > maxIdentityKey || len(cert) > maxCertificate || len(bind) > maxBinding {
		return nil, fmt.Errorf("%w: identity fields out of bounds", ErrNotCertified)
	}
	id.Username = string(user)
	id.IdentityKey = bytes.Clone(ik)
	id.Certificate = bytes.Clone(cert)
	id.Binding = bytes.Clone(bind)
	return id, nil
}

// newIdentity makes this device's leaf identity for its MLS signature key.
func newIdentity(self *Self, sigPub []byte) ([]byte, error) {
	sig, err := self.Identity.Sign(rand.Reader, bindingTranscript(self.Username, self.DeviceID, sigPub))
	if err != nil {
		return nil, fmt.Errorf("groups: binding the MLS key: %w", err)
	}
	return encodeIdentity(&Identity{Username: self.Username, DeviceID: self.DeviceID,
		IdentityKey: self.Identity.PublicKey().Serialize(), Certificate: self.Certificate, Binding: sig})
}

// NewIdentity is the MLS basic credential identity of self's device for
// its MLS signature key sigPub (what its KeyPackages carry): for a load
// generator's simulated devices, which make KeyPackages of their own.
func NewIdentity(self *Self, sigPub ed25519.PublicKey) ([]byte, error) {
	return newIdentity(self, sigPub)
}

// verifyIdentity checks a leaf's credential and signature key against the
// pinned org key: the certificate chains the identity key to the username,
// and the identity key signed this signature key for this device.
func verifyIdentity(orgKey ed25519.PublicKey, cred mls.Credential, sigKey []byte) (*Identity, error) {
	if cred.Type != mls.CredentialBasic {
		return nil, fmt.Errorf("%w: not a basic credential", ErrNotCertified)
	}
	id, err := ParseIdentity(cred.Identity)
	if err != nil {
		return nil, err
	}
	if _, err := orgcert.Verify(orgKey, id.Certificate, id.Username, id.IdentityKey); err != nil {
		return id, fmt.Errorf("%w: %s: %w", ErrNotCertified, id.Username, err)
	}
	pub, err := keys.ParsePublicKey(id.IdentityKey)
	if err != nil {
		return id, fmt.Errorf("%w: %s: identity key: %w", ErrNotCertified, id.Username, err)
	}
	if !pub.Verify(id.Binding, bindingTranscript(id.Username, id.DeviceID, sigKey)) {
		return id, fmt.Errorf("%w: %s: the identity key did not sign this device's group key", ErrNotCertified, id.Username)
	}
	return id, nil
}

// validator is the mls.CredentialValidator of every group: each new or
// changed leaf must be an org-certified identity, and a replaced leaf
// must stay the same user and device (the library already refuses any
// change of the identity bytes).
type validator struct {
	orgKey ed25519.PublicKey
	// refused records the identities refused, for telling the user.
	refused []string
}

func (v *validator) ValidateCredential(old *mls.Credential, cred mls.Credential, sigKey []byte) error {
	id, err := verifyIdentity(v.orgKey, cred, sigKey)
	if err != nil {
		who := "an unnamed member"
		if id != nil {
			who = fmt.Sprintf("%s (device %d)", id.Username, id.DeviceID)
		}
		v.refused = append(v.refused, who)
		return err
	}
	if old != nil {
		prev, err := ParseIdentity(old.Identity)
		if err != nil || prev.Username != id.Username || prev.DeviceID != id.DeviceID || !bytes.Equal(prev.IdentityKey, id.IdentityKey) {
			return fmt.Errorf("%w: a member's leaf changed hands", ErrNotCertified)
		}
	}
	return nil
}
