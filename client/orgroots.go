package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"sotto/client/keylog"
	"sotto/client/orgstate"
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
	// ErrNotCertified: see orgstate.ErrNotCertified.
	ErrNotCertified = orgstate.ErrNotCertified
	// ErrLogKeyMismatch stops an enrollment whose relay answered with
	// another key transparency log key than the invitation's, or none.
	ErrLogKeyMismatch = errors.New("client: the relay's key log key is not the one in the invitation; enrollment stopped")
)

// AlarmUncertifiedKey: the relay served or delivered an identity key for
// a user without a valid organization certificate; the key was not used.
const AlarmUncertifiedKey AlarmKind = "uncertified-key"

// roots are what a device pins at enrollment or link.
type roots = orgstate.Roots

// pinRoots binds a new store to its organization: the witness key in the
// key log (client/keylog/witness.go), the rest in orgstate.
func pinRoots(ctx context.Context, db kv, r *roots) error {
	if err := r.Check(); err != nil {
		return err
	}
	if err := keylog.PinWitnessKey(ctx, db, r.WitnessKey); err != nil {
		return err
	}
	return orgstate.PinRoots(ctx, db, r)
}

// loadRoots reads what pinRoots stored.
func loadRoots(ctx context.Context, db kv) (*roots, error) {
	r, err := orgstate.LoadRoots(ctx, db)
	if err != nil {
		return nil, err
	}
	if r.WitnessKey, err = keylog.WitnessKey(ctx, db); err != nil {
		return nil, err
	}
	return r, nil
}

// OrgName returns the name of this device's organization.
func (c *Client) OrgName(ctx context.Context) (string, error) {
	return orgstate.Name(ctx, c.db)
}

// IdentityCertificate returns this account's identity certificate.
func (c *Client) IdentityCertificate(ctx context.Context) ([]byte, error) {
	return orgstate.IdentityCertificate(ctx, c.db)
}

// checkCertified checks that cert chains key to user under the pinned org
// key. A failure raises an uncertified-key alarm and wraps ErrNotCertified.
func (c *Client) checkCertified(ctx context.Context, db getter, user string, key, cert []byte) error {
	err := orgstate.CheckCertified(ctx, db, user, key, cert)
	var nc *orgstate.NotCertifiedError
	if errors.As(err, &nc) {
		why := "without a certificate from the organization"
		if len(cert) != 0 {
			why = fmt.Sprintf("with a certificate that does not hold (%v)", nc.Err)
		}
		return fmt.Errorf("%w: %s: %w", ErrNotCertified, user, c.alarm(&TransparencyAlarm{Kind: AlarmUncertifiedKey, User: user,
			Detail: fmt.Sprintf("the relay served an identity key for %s %s; it was not used and nothing was sent to it", user, why)}))
	}
	return err
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
