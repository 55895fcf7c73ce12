package client

import (
	"context"
	"errors"
	"fmt"

	"sotto/signal/fingerprint"
)

// Verification by scanning: the person's device reads the other person's
// safety-number QR code (their scannable form: their fingerprint and
// ours, as they computed them) and compares it with its own, in constant
// time (signal/fingerprint). Only a match marks the contact verified.

var (
	// ErrBadScan reports scanned bytes that are no safety-number code.
	ErrBadScan = errors.New("client: the scanned code is not a Sotto safety number")
	// ErrKeyMoved reports a key that changed between the comparison and
	// marking it verified: compare again.
	ErrKeyMoved = errors.New("client: the contact's key changed during the comparison: compare again")
)

// VerifyScanned compares scanned (the other person's scannable safety
// number) with the safety number with user, and marks user verified only
// when they match. It reports whether they matched.
func (c *Client) VerifyScanned(ctx context.Context, user string, scanned []byte) (bool, error) {
	user = normalize(user)
	if _, err := c.connection(); err == nil {
		if err := c.RefreshIdentity(ctx, user); err != nil {
			return false, err
		}
	}
	rec, err := loadIdentity(ctx, c.db, user)
	if err != nil {
		return false, err
	}
	if rec == nil {
		return false, fmt.Errorf("client: no identity key known for %s: %w", user, ErrNotConnected)
	}
	fp, err := fingerprint.New(fingerprint.Version, fingerprint.Iterations,
		[]byte(c.acct.Username), c.IdentityKey(), []byte(user), rec.Key)
	if err != nil {
		return false, err
	}
	ok, err := fp.CompareScanned(scanned)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrBadScan, err)
	}
	if !ok {
		return false, nil
	}
	return true, c.verifyKey(ctx, user, rec.Key)
}
