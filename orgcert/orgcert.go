package orgcert

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// GrantDomain prefixes the grant body in the org key's signature
// (client/org and the relay use the same string for ORG_INVITATION).
const GrantDomain = "sotto/org invitation v1\x00"

// identityDomain prefixes the identity certificate's transcript.
const identityDomain = "sotto/org identity v1\x00"

// Bounds of the fields; the honest values are far inside them.
const (
	MaxUsername     = 64
	MaxOrgName      = 128
	MaxIdentityKey  = 1024
	MaxCertificate  = 2048
	SeatTokenSize   = 32
	maxGrantDocBody = 512
)

// Errors callers branch on.
var (
	// ErrMalformed reports bytes that are not a well-formed certificate or grant.
	ErrMalformed = errors.New("orgcert: malformed certificate")
	// ErrBadSignature reports a grant the org key did not sign, or an
	// identity certificate the grant's invitation key did not sign.
	ErrBadSignature = errors.New("orgcert: signature does not verify")
	// ErrWrongIdentity reports a certificate for another user or key.
	ErrWrongIdentity = errors.New("orgcert: the certificate is for another user or identity key")
	// ErrExpired reports an identity certified after its grant expired.
	ErrExpired = errors.New("orgcert: certified after the invitation expired")
)

// HashSeatToken is what the relay keeps of a seat token.
func HashSeatToken(token []byte) [32]byte { return sha256.Sum256(token) }

// SignGrant signs g with the org key as an ORG_INVITATION document.
func SignGrant(orgKey ed25519.PrivateKey, g *Grant) (*wire.OrgDocument, error) {
	if len(orgKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: org key", ErrMalformed)
	}
	if err := checkGrant(g); err != nil {
		return nil, err
	}
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("orgcert: encode grant: %w", err)
	}
	sig := ed25519.Sign(orgKey, append([]byte(GrantDomain), body...))
	return &wire.OrgDocument{Kind: wire.OrgDocumentKind_ORG_INVITATION, Body: body, Signature: sig}, nil
}

func checkGrant(g *Grant) error {
	switch {
	case g == nil:
		return fmt.Errorf("%w: no grant", ErrMalformed)
	case g.Username == "" || len(g.Username) > MaxUsername || !utf8.ValidString(g.Username):
		return fmt.Errorf("%w: username", ErrMalformed)
	case len(g.InvitationKey) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: invitation key", ErrMalformed)
	case len(g.SeatTokenHash) != sha256.Size:
		return fmt.Errorf("%w: seat token hash", ErrMalformed)
	case g.IssuedMs <= 0 || g.ExpiresMs <= g.IssuedMs:
		return fmt.Errorf("%w: validity", ErrMalformed)
	case len(g.OrgName) > MaxOrgName || !utf8.ValidString(g.OrgName):
		return fmt.Errorf("%w: organization name", ErrMalformed)
	}
	return nil
}

// OpenGrant checks that doc is an ORG_INVITATION signed by orgKey and
// returns its grant.
func OpenGrant(orgKey ed25519.PublicKey, doc *wire.OrgDocument) (*Grant, error) {
	if doc == nil || doc.Kind != wire.OrgDocumentKind_ORG_INVITATION || len(doc.Body) == 0 ||
		len(doc.Body) > maxGrantDocBody || len(doc.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: not an invitation grant", ErrMalformed)
	}
	if len(orgKey) != ed25519.PublicKeySize || !ed25519.Verify(orgKey, append([]byte(GrantDomain), doc.Body...), doc.Signature) {
		return nil, fmt.Errorf("%w: the grant is not signed by the organization key", ErrBadSignature)
	}
	var g Grant
	if err := proto.Unmarshal(doc.Body, &g); err != nil {
		return nil, fmt.Errorf("%w: grant: %v", ErrMalformed, err)
	}
	if err := checkGrant(&g); err != nil {
		return nil, err
	}
	return &g, nil
}

// transcript is what the invitation key signs for an identity key.
func transcript(grantDoc []byte, identityKey []byte, issuedMs int64) []byte {
	h := sha256.Sum256(grantDoc)
	b := make([]byte, 0, len(identityDomain)+32+8+2+len(identityKey))
	b = append(b, identityDomain...)
	b = append(b, h[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(issuedMs))
	b = binary.BigEndian.AppendUint16(b, uint16(len(identityKey)))
	return append(b, identityKey...)
}

// Issue binds identityKey to the grant in grantDoc with the invitation's
// private key and returns the encoded certificate.
func Issue(grantDoc *wire.OrgDocument, invitationKey ed25519.PrivateKey, identityKey []byte, now time.Time) ([]byte, error) {
	if len(invitationKey) != ed25519.PrivateKeySize || len(identityKey) == 0 || len(identityKey) > MaxIdentityKey {
		return nil, fmt.Errorf("%w: key sizes", ErrMalformed)
	}
	gb, err := proto.MarshalOptions{Deterministic: true}.Marshal(grantDoc)
	if err != nil {
		return nil, fmt.Errorf("orgcert: encode grant: %w", err)
	}
	issued := now.UnixMilli()
	cert := &IdentityCertificate{Grant: gb, IdentityKey: identityKey, IssuedMs: issued,
		Signature: ed25519.Sign(invitationKey, transcript(gb, identityKey, issued))}
	return proto.MarshalOptions{Deterministic: true}.Marshal(cert)
}

// Verified is what a checked certificate says.
type Verified struct {
	Username string
	OrgName  string
	Grant    *Grant
	// GrantDoc is the signed grant, as it travelled.
	GrantDoc *wire.OrgDocument
	Issued   time.Time
}

// Decode parses an encoded certificate without checking anything but its
// shape.
func Decode(cert []byte) (*IdentityCertificate, *wire.OrgDocument, error) {
	if len(cert) == 0 || len(cert) > MaxCertificate {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(cert))
	}
	var c IdentityCertificate
	if err := proto.Unmarshal(cert, &c); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(c.IdentityKey) == 0 || len(c.IdentityKey) > MaxIdentityKey || len(c.Signature) != ed25519.SignatureSize || c.IssuedMs <= 0 {
		return nil, nil, fmt.Errorf("%w: fields", ErrMalformed)
	}
	var doc wire.OrgDocument
	if err := proto.Unmarshal(c.Grant, &doc); err != nil {
		return nil, nil, fmt.Errorf("%w: grant document: %v", ErrMalformed, err)
	}
	return &c, &doc, nil
}

// Verify checks the whole chain for (username, identityKey): the grant is
// signed by orgKey and names username, the certificate is signed by the
// grant's invitation key, binds exactly identityKey, and was issued
// before the grant expired.
func Verify(orgKey ed25519.PublicKey, cert []byte, username string, identityKey []byte) (*Verified, error) {
	c, doc, err := Decode(cert)
	if err != nil {
		return nil, err
	}
	g, err := OpenGrant(orgKey, doc)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(g.InvitationKey, transcript(c.Grant, c.IdentityKey, c.IssuedMs), c.Signature) {
		return nil, fmt.Errorf("%w: the identity key is not signed by the invitation key", ErrBadSignature)
	}
	if g.Username != username || subtle.ConstantTimeCompare(c.IdentityKey, identityKey) != 1 {
		return nil, ErrWrongIdentity
	}
	if c.IssuedMs > g.ExpiresMs {
		return nil, ErrExpired
	}
	return &Verified{Username: g.Username, OrgName: g.OrgName, Grant: g, GrantDoc: doc, Issued: time.UnixMilli(c.IssuedMs)}, nil
}
