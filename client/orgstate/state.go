// Package orgstate is the organization's state as one device holds it:
// its one job is to keep, verify and answer for the organization's
// documents. It pins the roots of trust a device learns from its
// invitation (the org key, the organization's name, the policy and notice
// floors, the account's identity certificate), applies the documents the
// org key signed (notices, the device policy, membership certificates,
// the member access key, release approvals, wipe orders) with their
// rollback rules, and answers what the rest of the client asks of them:
// the policy in force, the members, whether a key is certified, the
// admin's key.
//
// A device enrolled with a code that carries the org key's fingerprint
// ("secret.fingerprint") is bound to that organization: it fetches the
// org public key from the relay once, refuses it unless its fingerprint
// matches, and from then on obeys only documents signed by it. Whatever
// fails verification is dropped and counted; the device and its data are
// left as they were.
//
// The package does no network I/O and knows only the store
// (client/store) and the organization's formats (client/org, orgcert):
// the facade (package client) fetches and acknowledges documents, emits
// the events Apply reports, and signs and publishes an admin's documents.
package orgstate

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/client/store"
	"sotto/orgcert"
	"sotto/wire"
)

// Tables of the local store used by the organization's state.
const (
	Table        = "org"         // the roots, policy, rejected count, admin key, member access...
	TableNotices = "org-notices" // by sequence number
	TableCerts   = "org-certs"   // by username
)

// Keys of Table.
const (
	KeyOrgKey          = "key"           // the org's Ed25519 public key
	keyName            = "name"          // the organization's name
	keyPolicyMin       = "policy-min"    // no policy older than this version is accepted
	keyNoticeFloor     = "notice-floor"  // notices up to this sequence are not new to this device
	keyIdentityCert    = "identity-cert" // this account's own identity certificate
	KeyPolicy          = "policy"        // the policy in force (its body)
	keyRejected        = "rejected"
	KeyAdmin           = "admin-key" // the org private key's seed, on an admin's device
	keySubscription    = "subscription-expires"
	keyMemberAccess    = "member-access"           // the kept document's body
	keyReleaseApproval = "release-approval"        // the approval in force (its body)
	KeyPolicyPublished = "policy-published"        // the last policy version published from here
	KeyNoticePublished = "notice-published"        // the last notice sequence published from here
	KeyMemberPublished = "member-access-published" // the last member access version published from here
)

// Errors of the organization's state.
var (
	ErrNoOrg       = errors.New("client: this device is not bound to an organization")
	ErrNotOrgAdmin = errors.New("client: this device does not hold the organization key")
	// ErrNotCertified reports an identity key served or presented for a
	// user without a valid organization certificate for that user and
	// key: the relay (or someone) tried to pass off a key the
	// organization did not vouch for. Nothing is sent to it or accepted
	// from it.
	ErrNotCertified = errors.New("client: the organization has not certified this identity key")
	// ErrForbiddenByPolicy reports that the organization's policy in
	// force does not allow what was asked.
	ErrForbiddenByPolicy = errors.New("client: not allowed by the organization's policy")
)

// Getter is the part of the store (or a transaction) that reads a row.
type Getter interface {
	Get(ctx context.Context, table string, key []byte) ([]byte, error)
}

// KV is the store or one of its transactions.
type KV interface {
	Getter
	Put(ctx context.Context, table string, key, value []byte) error
	List(ctx context.Context, table string) ([]store.Entry, error)
}

// Get reads a row of table, nil when there is none.
func Get(ctx context.Context, db Getter, table, key string) ([]byte, error) {
	b, err := db.Get(ctx, table, []byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// U64 reads a counter of Table (0 when there is none).
func U64(ctx context.Context, db Getter, key string) (uint64, error) {
	b, err := Get(ctx, db, Table, key)
	if err != nil || len(b) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

// PutU64 writes a counter of Table.
func PutU64(ctx context.Context, db KV, key string, v uint64) error {
	return db.Put(ctx, Table, []byte(key), binary.BigEndian.AppendUint64(nil, v))
}

// Roots are what a device pins at enrollment or link (the witness key is
// the key log's: client/keylog).
type Roots struct {
	OrgKey      ed25519.PublicKey `json:"org_key"`
	OrgName     string            `json:"org_name"`
	WitnessKey  []byte            `json:"witness_key,omitempty"`
	PolicyMin   uint64            `json:"policy_min,omitempty"`
	NoticeFloor uint64            `json:"notice_floor,omitempty"`
	// Certificate is the account's identity certificate.
	Certificate []byte `json:"certificate"`
}

// Check vets roots from an invitation or a link approval.
func (r *Roots) Check() error {
	if len(r.OrgKey) != ed25519.PublicKeySize {
		return fmt.Errorf("client: organization key missing or malformed")
	}
	if len(r.WitnessKey) != 0 && len(r.WitnessKey) != ed25519.PublicKeySize {
		return fmt.Errorf("client: witness key malformed")
	}
	if len(r.Certificate) == 0 || len(r.Certificate) > orgcert.MaxCertificate {
		return fmt.Errorf("client: identity certificate missing or malformed")
	}
	return nil
}

// PinRoots binds a new store to its organization (all but the witness
// key, which the caller pins in the key log).
func PinRoots(ctx context.Context, db KV, r *Roots) error {
	if err := r.Check(); err != nil {
		return err
	}
	puts := []struct {
		k string
		v []byte
	}{
		{KeyOrgKey, r.OrgKey},
		{keyName, []byte(r.OrgName)},
		{keyPolicyMin, binary.BigEndian.AppendUint64(nil, r.PolicyMin)},
		{keyNoticeFloor, binary.BigEndian.AppendUint64(nil, r.NoticeFloor)},
		{keyIdentityCert, r.Certificate},
	}
	for _, p := range puts {
		if err := db.Put(ctx, Table, []byte(p.k), p.v); err != nil {
			return err
		}
	}
	// Until a policy says otherwise, the organization's default limit on
	// wrong passphrases applies.
	if l, ok := db.(interface{ SetWipeAfter(int) error }); ok {
		return l.SetWipeAfter(org.DefaultFailedUnlockLimit)
	}
	return nil
}

// LoadRoots reads what PinRoots stored (without the witness key).
func LoadRoots(ctx context.Context, db Getter) (*Roots, error) {
	key, err := Get(ctx, db, Table, KeyOrgKey)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, ErrNoOrg
	}
	r := &Roots{OrgKey: key}
	name, err := Get(ctx, db, Table, keyName)
	if err != nil {
		return nil, err
	}
	r.OrgName = string(name)
	if r.PolicyMin, err = U64(ctx, db, keyPolicyMin); err != nil {
		return nil, err
	}
	if r.NoticeFloor, err = U64(ctx, db, keyNoticeFloor); err != nil {
		return nil, err
	}
	if r.Certificate, err = Get(ctx, db, Table, keyIdentityCert); err != nil {
		return nil, err
	}
	return r, nil
}

// Name is the organization's name.
func Name(ctx context.Context, db Getter) (string, error) {
	b, err := Get(ctx, db, Table, keyName)
	return string(b), err
}

// IdentityCertificate is this account's identity certificate.
func IdentityCertificate(ctx context.Context, db Getter) ([]byte, error) {
	return Get(ctx, db, Table, keyIdentityCert)
}

// Key returns the org public key pinned at enrollment or link
// (ErrNoOrg: none).
func Key(ctx context.Context, db Getter) (ed25519.PublicKey, error) {
	k, err := Get(ctx, db, Table, KeyOrgKey)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, ErrNoOrg
	}
	return k, nil
}

// Fingerprint is the fingerprint of the org key this device is bound to
// ("" when none).
func Fingerprint(ctx context.Context, db Getter) (string, error) {
	k, err := Get(ctx, db, Table, KeyOrgKey)
	if err != nil || k == nil {
		return "", err
	}
	return org.Fingerprint(k), nil
}

// CheckCertified checks that cert chains key to user under the pinned
// org key; a refusal is a *NotCertifiedError (the caller raises the
// alarm).
func CheckCertified(ctx context.Context, db Getter, user string, key, cert []byte) error {
	orgKey, err := Get(ctx, db, Table, KeyOrgKey)
	if err != nil {
		return err
	}
	if orgKey == nil {
		return ErrNoOrg
	}
	if _, err := orgcert.Verify(orgKey, cert, user, key); err != nil {
		return &NotCertifiedError{User: user, Err: err}
	}
	return nil
}

// NotCertifiedError is CheckCertified's refusal: it wraps ErrNotCertified
// and why the certificate did not hold.
type NotCertifiedError struct {
	User string
	Err  error
}

func (e *NotCertifiedError) Error() string {
	return fmt.Sprintf("%v: %s: %v", ErrNotCertified, e.User, e.Err)
}

func (e *NotCertifiedError) Unwrap() []error { return []error{ErrNotCertified, e.Err} }

// AdminKey is the org private key on an admin's device (ErrNotOrgAdmin:
// this device does not hold it).
func AdminKey(ctx context.Context, db Getter) (ed25519.PrivateKey, error) {
	seed, err := Get(ctx, db, Table, KeyAdmin)
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, ErrNotOrgAdmin
	}
	defer clear(seed)
	return ed25519.NewKeyFromSeed(seed), nil
}

// InstallAdminKey keeps priv in the store; it must be the key of the
// organization this device is bound to.
func InstallAdminKey(ctx context.Context, db KV, priv ed25519.PrivateKey) error {
	pinned, err := Key(ctx, db)
	if err != nil {
		return err
	}
	if !priv.Public().(ed25519.PublicKey).Equal(pinned) {
		return fmt.Errorf("%w: this device is bound to organization %s", org.ErrKeyMismatch, org.Fingerprint(pinned))
	}
	return db.Put(ctx, Table, []byte(KeyAdmin), priv.Seed())
}

// Policy returns the newest verified org policy in force, or nil when
// none was received (callers read nil as the defaults: see org.Policy's
// methods, which accept a nil receiver).
func Policy(ctx context.Context, db Getter) (*org.Policy, error) {
	b, err := Get(ctx, db, Table, KeyPolicy)
	if err != nil || b == nil {
		return nil, err
	}
	var p org.Policy
	if err := proto.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("client: stored policy: %w", err)
	}
	return &p, nil
}

// PolicyIn reads the org policy in force from db (a store or a
// transaction: inside Update only the transaction may be used). nil: no
// policy, or an unreadable one, read as the defaults.
func PolicyIn(ctx context.Context, db Getter) *org.Policy {
	p, err := Policy(ctx, db)
	if err != nil {
		return nil
	}
	return p
}

// PolicyVersion is the version of the policy in force (or of the floor,
// or of the newest this admin device published).
func PolicyVersion(ctx context.Context, db Getter) (uint64, error) {
	p, err := Policy(ctx, db)
	if err != nil {
		return 0, err
	}
	floor, err := U64(ctx, db, keyPolicyMin)
	if err != nil {
		return 0, err
	}
	// An admin's device knows what it published before it comes back.
	published, err := U64(ctx, db, KeyPolicyPublished)
	return max(p.GetVersion(), floor, published), err
}

// Notice is a verified notice from the organization.
type Notice struct {
	Seq      uint64    `json:"seq"`
	Issued   time.Time `json:"issued"`
	Received time.Time `json:"received"`
	Text     string    `json:"text"`
}

// Notices lists the verified notices, oldest first.
func Notices(ctx context.Context, db KV) ([]Notice, error) {
	entries, err := db.List(ctx, TableNotices)
	if err != nil {
		return nil, err
	}
	out := make([]Notice, 0, len(entries))
	for _, e := range entries {
		var n Notice
		if err := json.Unmarshal(e.Value, &n); err != nil {
			return nil, fmt.Errorf("client: stored notice: %w", err)
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Notice) int { return cmpU64(a.Seq, b.Seq) })
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// NoticeHigh is the newest notice sequence this device knows: the floor
// from its invitation, one it published, or a notice received since.
func NoticeHigh(ctx context.Context, db KV) (uint64, error) {
	high, err := U64(ctx, db, keyNoticeFloor)
	if err != nil {
		return 0, err
	}
	published, err := U64(ctx, db, KeyNoticePublished)
	if err != nil {
		return 0, err
	}
	high = max(high, published)
	ns, err := Notices(ctx, db)
	if err != nil {
		return 0, err
	}
	for _, n := range ns {
		high = max(high, n.Seq)
	}
	return high, nil
}

// Member is a verified membership certificate.
type Member struct {
	User        string    `json:"user"`
	IdentityKey []byte    `json:"identity_key"`
	Expires     time.Time `json:"expires"`
}

// Members lists the verified membership certificates valid at now.
func Members(ctx context.Context, db KV, now time.Time) ([]Member, error) {
	entries, err := db.List(ctx, TableCerts)
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, e := range entries {
		var cert org.Certificate
		if err := proto.Unmarshal(e.Value, &cert); err != nil {
			return nil, fmt.Errorf("client: stored certificate: %w", err)
		}
		if cert.Covers(cert.Username, cert.IdentityKey, now) {
			out = append(out, Member{User: cert.Username, IdentityKey: cert.IdentityKey, Expires: time.UnixMilli(cert.ExpiresMs)})
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.User, b.User) })
	return out, nil
}

// Covers reports whether a valid membership certificate binds user to
// key at now.
func Covers(ctx context.Context, db Getter, user string, key []byte, now time.Time) (bool, error) {
	b, err := Get(ctx, db, TableCerts, user)
	if err != nil || b == nil {
		return false, err
	}
	var cert org.Certificate
	if err := proto.Unmarshal(b, &cert); err != nil {
		return false, fmt.Errorf("client: stored certificate: %w", err)
	}
	return cert.Covers(user, key, now), nil
}

// Rejected counts the organization documents dropped because they failed
// verification.
func Rejected(ctx context.Context, db Getter) (uint64, error) {
	return U64(ctx, db, keyRejected)
}

// CountRejected counts one more rejected document.
func CountRejected(ctx context.Context, db KV) error {
	n, err := Rejected(ctx, db)
	if err != nil {
		return err
	}
	return PutU64(ctx, db, keyRejected, n+1)
}

// NoteSubscription keeps the subscription end the relay reported at
// authentication, so that it can be shown offline too.
func NoteSubscription(ctx context.Context, db KV, expiresMs int64) error {
	if expiresMs <= 0 {
		return nil
	}
	return PutU64(ctx, db, keySubscription, uint64(expiresMs))
}

// SubscriptionExpires is the end of the account's subscription as the
// relay last reported it (zero: not known yet).
func SubscriptionExpires(ctx context.Context, db Getter) (time.Time, error) {
	b, err := Get(ctx, db, Table, keySubscription)
	if err != nil || len(b) != 8 {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b))), nil
}

// MemberAccess returns the member access document kept (verified when it
// was applied), or nil.
func MemberAccess(ctx context.Context, db Getter) (*wire.MemberAccess, error) {
	b, err := Get(ctx, db, Table, keyMemberAccess)
	if err != nil || b == nil {
		return nil, err
	}
	var m wire.MemberAccess
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("client: member access: %w", err)
	}
	return &m, nil
}

// ReleaseApproval returns the organization's release approval in force
// on this device (verified against the org key when it arrived), or nil.
func ReleaseApproval(ctx context.Context, db Getter) (*org.ReleaseApproval, error) {
	b, err := Get(ctx, db, Table, keyReleaseApproval)
	if err != nil || b == nil {
		return nil, err
	}
	var a org.ReleaseApproval
	if err := proto.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("client: release approval: %w", err)
	}
	return &a, nil
}
