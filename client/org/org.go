package org

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/orgcert"
	"sotto/wire"
)

// Errors callers branch on.
var (
	ErrBadSignature    = errors.New("org: signature does not verify with the organization key")
	ErrBadDocument     = errors.New("org: malformed organization document")
	ErrWrongKind       = errors.New("org: unexpected kind of organization document")
	ErrBadKey          = errors.New("org: malformed organization key")
	ErrKeyMismatch     = errors.New("org: the organization key does not match the fingerprint from the activation code")
	ErrNotThisDevice   = errors.New("org: the wipe order names another device or enrollment")
	ErrExpired         = errors.New("org: the order has expired")
	ErrStale           = errors.New("org: older than what this device already has")
	ErrWrongPassphrase = errors.New("org: wrong passphrase or damaged key file")
)

// DefaultFailedUnlockLimit applies when a policy sets no limit.
const DefaultFailedUnlockLimit = 10

// MaxWipeValidity bounds how long a wipe order may stay valid.
const MaxWipeValidity = 90 * 24 * time.Hour

// MaxDocument bounds the size of an encoded document.
const MaxDocument = 16 << 10

// domains separate the signatures of the kinds of document: a signature
// over a notice can never pass as a wipe order. The relay checks the same
// strings (relay/org.go).
var domains = map[wire.OrgDocumentKind]string{
	wire.OrgDocumentKind_ORG_NOTICE:           "sotto/org notice v1\x00",
	wire.OrgDocumentKind_ORG_POLICY:           "sotto/org policy v1\x00",
	wire.OrgDocumentKind_ORG_WIPE:             "sotto/org wipe v1\x00",
	wire.OrgDocumentKind_ORG_CERTIFICATE:      "sotto/org certificate v1\x00",
	wire.OrgDocumentKind_ORG_INVITATION:       orgcert.GrantDomain,
	wire.OrgDocumentKind_ORG_MEMBER_ACCESS:    "sotto/org member access v1\x00",
	wire.OrgDocumentKind_ORG_RELEASE_APPROVAL: "sotto/org release approval v1\x00",
}

// WipeConfirmDomain prefixes the hash of a wipe order in the target
// device's confirmation, signed with its device key.
const WipeConfirmDomain = "sotto/org wipe-confirm v1\x00"

// signedMessage is what the org key signs for a document of kind.
func signedMessage(kind wire.OrgDocumentKind, body []byte) ([]byte, error) {
	d, ok := domains[kind]
	if !ok {
		return nil, fmt.Errorf("%w: kind %d", ErrWrongKind, kind)
	}
	return append([]byte(d), body...), nil
}

// Fingerprint is the short form of an org public key carried by activation
// codes: the first 16 bytes of its SHA-256, in hex.
func Fingerprint(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:16])
}

// MatchesFingerprint reports whether pub has fingerprint fp.
func MatchesFingerprint(pub ed25519.PublicKey, fp string) bool {
	return len(pub) == ed25519.PublicKeySize &&
		subtle.ConstantTimeCompare([]byte(Fingerprint(pub)), []byte(strings.ToLower(fp))) == 1
}

// CodeFingerprint returns the org key fingerprint an activation code
// carries ("secret.fingerprint"), or "" when it carries none.
func CodeFingerprint(code string) (string, error) {
	i := strings.LastIndexByte(code, '.')
	if i < 0 {
		return "", nil
	}
	fp := strings.ToLower(code[i+1:])
	if b, err := hex.DecodeString(fp); err != nil || len(b) != 16 {
		return "", fmt.Errorf("org: the activation code's organization fingerprint is malformed")
	}
	return fp, nil
}

// CodeWithFingerprint appends the org key fingerprint to an activation
// code secret.
func CodeWithFingerprint(secret string, pub ed25519.PublicKey) string {
	return secret + "." + Fingerprint(pub)
}

// ParsePublicKey checks an org public key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if len(b) != ed25519.PublicKeySize {
		return nil, ErrBadKey
	}
	return ed25519.PublicKey(append([]byte(nil), b...)), nil
}

// Sign encodes body and signs it as a document of kind.
func Sign(priv ed25519.PrivateKey, kind wire.OrgDocumentKind, body proto.Message) (*wire.OrgDocument, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, ErrBadKey
	}
	b, err := proto.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("org: encode: %w", err)
	}
	msg, err := signedMessage(kind, b)
	if err != nil {
		return nil, err
	}
	return &wire.OrgDocument{Kind: kind, Body: b, Signature: ed25519.Sign(priv, msg)}, nil
}

// Verify checks doc's signature with pub and that it is of kind want.
func Verify(pub ed25519.PublicKey, want wire.OrgDocumentKind, doc *wire.OrgDocument) error {
	if doc == nil || len(doc.Body) > MaxDocument {
		return ErrBadDocument
	}
	if doc.Kind != want {
		return ErrWrongKind
	}
	if len(pub) != ed25519.PublicKeySize {
		return ErrBadKey
	}
	msg, err := signedMessage(doc.Kind, doc.Body)
	if err != nil {
		return err
	}
	if !ed25519.Verify(pub, msg, doc.Signature) {
		return ErrBadSignature
	}
	return nil
}

// DecodeDocument parses the content of an ORG_DOCUMENT envelope. It does
// not verify the signature.
func DecodeDocument(b []byte) (*wire.OrgDocument, error) {
	if len(b) > MaxDocument+256 {
		return nil, ErrBadDocument
	}
	var d wire.OrgDocument
	if err := proto.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadDocument, err)
	}
	if _, ok := domains[d.Kind]; !ok || d.Kind == wire.OrgDocumentKind_ORG_INVITATION {
		// An invitation grant goes to the relay, never to devices.
		return nil, ErrWrongKind
	}
	return &d, nil
}

func open[T proto.Message](pub ed25519.PublicKey, kind wire.OrgDocumentKind, doc *wire.OrgDocument, m T) (T, error) {
	var zero T
	if err := Verify(pub, kind, doc); err != nil {
		return zero, err
	}
	if err := proto.Unmarshal(doc.Body, m); err != nil {
		return zero, fmt.Errorf("%w: %v", ErrBadDocument, err)
	}
	return m, nil
}

// OpenNotice verifies and decodes a notice.
func OpenNotice(pub ed25519.PublicKey, doc *wire.OrgDocument) (*Notice, error) {
	n, err := open(pub, wire.OrgDocumentKind_ORG_NOTICE, doc, &Notice{})
	if err != nil {
		return nil, err
	}
	if n.Seq == 0 || len(n.Text) == 0 {
		return nil, fmt.Errorf("%w: empty notice", ErrBadDocument)
	}
	return n, nil
}

// OpenPolicy verifies and decodes a policy.
func OpenPolicy(pub ed25519.PublicKey, doc *wire.OrgDocument) (*Policy, error) {
	p, err := open(pub, wire.OrgDocumentKind_ORG_POLICY, doc, &Policy{})
	if err != nil {
		return nil, err
	}
	if p.Version == 0 || p.FailedUnlockLimit > 1000 ||
		(p.DisappearingMaxSeconds != 0 && p.DisappearingMinSeconds > p.DisappearingMaxSeconds) {
		return nil, fmt.Errorf("%w: invalid policy", ErrBadDocument)
	}
	return p, nil
}

// OpenMemberAccess verifies and decodes the organization's member access
// key (see wire.MemberAccess).
func OpenMemberAccess(pub ed25519.PublicKey, doc *wire.OrgDocument) (*wire.MemberAccess, error) {
	m, err := open(pub, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, doc, &wire.MemberAccess{})
	if err != nil {
		return nil, err
	}
	if m.Version == 0 || len(m.AccessKey) != wire.AccessKeySize {
		return nil, fmt.Errorf("%w: invalid member access key", ErrBadDocument)
	}
	return m, nil
}

// MaxApprovedManifests bounds the manifests one release approval names.
const MaxApprovedManifests = 32

// OpenReleaseApproval verifies and decodes a release approval.
func OpenReleaseApproval(pub ed25519.PublicKey, doc *wire.OrgDocument) (*ReleaseApproval, error) {
	a, err := open(pub, wire.OrgDocumentKind_ORG_RELEASE_APPROVAL, doc, &ReleaseApproval{})
	if err != nil {
		return nil, err
	}
	if a.Version == "" || a.IssuedMs <= 0 || len(a.ManifestHashes) == 0 || len(a.ManifestHashes) > MaxApprovedManifests ||
		len(a.WitnessKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: invalid release approval", ErrBadDocument)
	}
	for _, h := range a.ManifestHashes {
		if len(h) != sha256.Size {
			return nil, fmt.Errorf("%w: invalid release approval", ErrBadDocument)
		}
	}
	return a, nil
}

// OpenWipe verifies and decodes a wipe order.
func OpenWipe(pub ed25519.PublicKey, doc *wire.OrgDocument) (*WipeOrder, error) {
	w, err := open(pub, wire.OrgDocumentKind_ORG_WIPE, doc, &WipeOrder{})
	if err != nil {
		return nil, err
	}
	if len(w.Nonce) != 16 || w.Username == "" || w.DeviceId == 0 || len(w.IdentityKey) == 0 ||
		w.ExpiresMs <= w.IssuedMs || time.Duration(w.ExpiresMs-w.IssuedMs)*time.Millisecond > MaxWipeValidity {
		return nil, fmt.Errorf("%w: invalid wipe order", ErrBadDocument)
	}
	return w, nil
}

// OpenCertificate verifies and decodes a membership certificate.
func OpenCertificate(pub ed25519.PublicKey, doc *wire.OrgDocument) (*Certificate, error) {
	c, err := open(pub, wire.OrgDocumentKind_ORG_CERTIFICATE, doc, &Certificate{})
	if err != nil {
		return nil, err
	}
	if c.Username == "" || len(c.IdentityKey) == 0 || c.ExpiresMs <= c.IssuedMs {
		return nil, fmt.Errorf("%w: invalid certificate", ErrBadDocument)
	}
	return c, nil
}

// Enrollment identifies one enrollment of one device.
type Enrollment struct {
	Username       string
	DeviceID       uint32
	RegistrationID uint32
	IdentityKey    []byte
}

// Targets reports whether a verified order names exactly this enrollment
// and is still valid at now.
func (w *WipeOrder) Targets(e Enrollment, now time.Time) error {
	if w.Username != e.Username || w.DeviceId != e.DeviceID || w.RegistrationId != e.RegistrationID ||
		subtle.ConstantTimeCompare(w.IdentityKey, e.IdentityKey) != 1 {
		return ErrNotThisDevice
	}
	if now.UnixMilli() >= w.ExpiresMs {
		return ErrExpired
	}
	return nil
}

// ReceiptDomain prefixes the hash of a document's body in a device's
// receipt for it, signed with its device key (relay/delivery.go).
const ReceiptDomain = "sotto/org receipt v1\x00"

// ReceiptMessage is what a device signs, with its device key, to say it
// applied the document whose body is body.
func ReceiptMessage(body []byte) (msg, hash []byte) {
	h := sha256.Sum256(body)
	return append([]byte(ReceiptDomain), h[:]...), h[:]
}

// DeliveryQueryDomain prefixes an admin's signed query of how far a
// document got (relay/delivery.go keeps the same string).
const DeliveryQueryDomain = "sotto/org delivery v1\x00"

// DeliveryQueryMessage is what the org key signs to ask the relay for a
// document's receipts at atMs.
func DeliveryQueryMessage(hash []byte, atMs int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(DeliveryQueryDomain), hash...), uint64(atMs))
}

// ConfirmMessage is what a device signs, with its device key, to confirm
// it carries out the wipe order whose body is orderBody.
func ConfirmMessage(orderBody []byte) (msg, orderHash []byte) {
	h := sha256.Sum256(orderBody)
	return append([]byte(WipeConfirmDomain), h[:]...), h[:]
}

// Covers reports whether a verified certificate vouches for (username,
// identityKey) at now.
func (c *Certificate) Covers(username string, identityKey []byte, now time.Time) bool {
	return c.Username == username && subtle.ConstantTimeCompare(c.IdentityKey, identityKey) == 1 &&
		now.UnixMilli() >= c.IssuedMs-int64(time.Hour/time.Millisecond) && now.UnixMilli() < c.ExpiresMs
}

// UnlockLimit is the policy's failed-unlock limit, with the default.
func (p *Policy) UnlockLimit() int {
	if p == nil || p.FailedUnlockLimit == 0 {
		return DefaultFailedUnlockLimit
	}
	return int(p.FailedUnlockLimit)
}

// AllowsDisappearing reports whether a disappearing-message timer of d
// (0: off) is within the policy's range.
func (p *Policy) AllowsDisappearing(d time.Duration) bool {
	if p == nil {
		return true
	}
	s := uint64(d / time.Second)
	if p.DisappearingMinSeconds != 0 && (d == 0 || s < uint64(p.DisappearingMinSeconds)) {
		return false
	}
	return p.DisappearingMaxSeconds == 0 || (d != 0 && s <= uint64(p.DisappearingMaxSeconds))
}

// AttachmentsAllowed reports whether the policy allows attachments.
func (p *Policy) AttachmentsAllowed() bool { return p == nil || !p.AttachmentsDisabled }

// CallsAllowed reports whether the policy allows calls.
func (p *Policy) CallsAllowed() bool { return p == nil || !p.CallsDisabled }

// IdleLock is the idle lock timeout (0: none).
func (p *Policy) IdleLock() time.Duration {
	if p == nil {
		return 0
	}
	return time.Duration(p.IdleLockSeconds) * time.Second
}

// SealedFallbackAllowed reports whether the policy lets a device send
// with its sender named when the relay refuses a sealed send.
func (p *Policy) SealedFallbackAllowed() bool { return p == nil || !p.SealedOnly }
