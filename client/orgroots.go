package client

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"sotto/client/keylog"
	"sotto/client/org"
	"sotto/orgcert"
)

// The roots of trust. A device learns them from its invitation (or, for
// the first admin device, from the relay host's bootstrap code and the org
// key it creates itself; for a linked device, from the approving device's
// sealed provisioning message), never from the relay: the org key, the
// organization's name, the key log's key and the org witness's key. Every
// identity key this device accepts for anyone must carry a certificate
// that chains to the org key (orgcert); every org document must be signed
// by it.

// Errors of the roots of trust.
var (
	// ErrNotCertified reports an identity key served or presented for a
	// user without a valid organization certificate for that user and
	// key: the relay (or someone) tried to pass off a key the
	// organization did not vouch for. Nothing is sent to it or accepted
	// from it.
	ErrNotCertified = errors.New("client: the organization has not certified this identity key")
	// ErrLogKeyMismatch stops an enrollment whose relay answered with
	// another key transparency log key than the invitation's, or none.
	ErrLogKeyMismatch = errors.New("client: the relay's key log key is not the one in the invitation; enrollment stopped")
)

// AlarmUncertifiedKey: the relay served or delivered an identity key for
// a user without a valid organization certificate; the key was not used.
const AlarmUncertifiedKey AlarmKind = "uncertified-key"

// Keys of the org table holding the roots (tblOrg, orgctl.go).
const (
	orgKeyKey        = "key"           // the org's Ed25519 public key
	orgNameKey       = "name"          // the organization's name
	orgPolicyMinKey  = "policy-min"    // no policy older than this version is accepted
	orgNoticeFloor   = "notice-floor"  // notices up to this sequence are not new to this device
	orgIdentityCert  = "identity-cert" // this account's own identity certificate
	orgWitnessKeyKey = "witness-key"   // the org witness's Ed25519 public key (optional)
)

// roots are what a device pins at enrollment or link.
type roots struct {
	OrgKey      ed25519.PublicKey `json:"org_key"`
	OrgName     string            `json:"org_name"`
	WitnessKey  []byte            `json:"witness_key,omitempty"`
	PolicyMin   uint64            `json:"policy_min,omitempty"`
	NoticeFloor uint64            `json:"notice_floor,omitempty"`
	// Certificate is the account's identity certificate.
	Certificate []byte `json:"certificate"`
}

func (r *roots) check() error {
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

// pinRoots binds a new store to its organization.
func pinRoots(ctx context.Context, db kv, r *roots) error {
	if err := r.check(); err != nil {
		return err
	}
	puts := []struct {
		k string
		v []byte
	}{
		{orgKeyKey, r.OrgKey},
		{orgNameKey, []byte(r.OrgName)},
		{orgPolicyMinKey, binary.BigEndian.AppendUint64(nil, r.PolicyMin)},
		{orgNoticeFloor, binary.BigEndian.AppendUint64(nil, r.NoticeFloor)},
		{orgIdentityCert, r.Certificate},
	}
	if err := keylog.PinWitnessKey(ctx, db, r.WitnessKey); err != nil { // client/keylog/witness.go
		return err
	}
	for _, p := range puts {
		if err := db.Put(ctx, tblOrg, []byte(p.k), p.v); err != nil {
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

// loadRoots reads what pinRoots stored.
func loadRoots(ctx context.Context, db kv) (*roots, error) {
	key, err := getOpt(ctx, db, tblOrg, orgKeyKey)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, ErrNoOrg
	}
	r := &roots{OrgKey: key}
	name, err := getOpt(ctx, db, tblOrg, orgNameKey)
	if err != nil {
		return nil, err
	}
	r.OrgName = string(name)
	if r.WitnessKey, err = keylog.WitnessKey(ctx, db); err != nil {
		return nil, err
	}
	if r.PolicyMin, err = getU64(ctx, db, orgPolicyMinKey); err != nil {
		return nil, err
	}
	if r.NoticeFloor, err = getU64(ctx, db, orgNoticeFloor); err != nil {
		return nil, err
	}
	if r.Certificate, err = getOpt(ctx, db, tblOrg, orgIdentityCert); err != nil {
		return nil, err
	}
	return r, nil
}

func getU64(ctx context.Context, db kv, key string) (uint64, error) {
	b, err := getOpt(ctx, db, tblOrg, key)
	if err != nil || len(b) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

// OrgName returns the name of this device's organization.
func (c *Client) OrgName(ctx context.Context) (string, error) {
	b, err := getOpt(ctx, c.db, tblOrg, orgNameKey)
	return string(b), err
}

// IdentityCertificate returns this account's identity certificate.
func (c *Client) IdentityCertificate(ctx context.Context) ([]byte, error) {
	return getOpt(ctx, c.db, tblOrg, orgIdentityCert)
}

// checkCertified checks that cert chains key to user under the pinned org
// key. A failure raises an uncertified-key alarm and wraps ErrNotCertified.
func (c *Client) checkCertified(ctx context.Context, db getter, user string, key, cert []byte) error {
	orgKey, err := getOpt(ctx, db, tblOrg, orgKeyKey)
	if err != nil {
		return err
	}
	if orgKey == nil {
		return ErrNoOrg
	}
	if _, err := orgcert.Verify(orgKey, cert, user, key); err != nil {
		why := "without a certificate from the organization"
		if len(cert) != 0 {
			why = fmt.Sprintf("with a certificate that does not hold (%v)", err)
		}
		return fmt.Errorf("%w: %s: %w", ErrNotCertified, user, c.alarm(&TransparencyAlarm{Kind: AlarmUncertifiedKey, User: user,
			Detail: fmt.Sprintf("the relay served an identity key for %s %s; it was not used and nothing was sent to it", user, why)}))
	}
	return nil
}

// SetWitnessKey makes the org witness's public key part of the roots this
// admin device hands out in invitations from now on, and pins it here. It
// refuses to replace another pinned key: devices invited before keep the
// key they have.
func (c *Client) SetWitnessKey(ctx context.Context, key ed25519.PublicKey) error {
	if _, err := c.adminKey(ctx); err != nil {
		return err
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("client: a witness key is a 32-byte Ed25519 public key")
	}
	old, err := keylog.WitnessKey(ctx, c.db)
	if err != nil {
		return err
	}
	if old != nil && !old.Equal(key) {
		return fmt.Errorf("client: this device already pins another witness key")
	}
	return keylog.PinWitnessKey(ctx, c.db, key)
}
