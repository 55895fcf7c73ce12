package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"sotto/client/store"
	"sotto/signal/sealed"
)

// Per-contact revocation of sealed access. A contact sends sealed to this
// account with the access key of its profile key, or with the
// organization's member access key, which every member holds. To stop
// one contact (a colleague who turned hostile, a device known stolen)
// without stopping the others, RevokeContact:
//
//   - makes a new profile key, of the next epoch, and uploads its access
//     key with that epoch, so the key the revoked contact holds is refused
//     and no older key can be set again (at an honest relay);
//   - has the relay refuse the member access key for this account
//     (SetAccessKeyRequest.refuse_member_access), which the contact keeps;
//   - shares the new profile key again with every other contact, with the
//     next messages to them, never with the revoked one;
//   - tells the account's other devices (revokesync.go), which keep the
//     same revoked set, upload the same key with the same refusal and
//     never give the key to the revoked contact either.
//
// RestoreContact gives the access back: the revocation is replaced by a
// restoration of the next epoch (the profile key stays; the contact gets
// it with the next messages to it), and the member key is accepted again
// once no contact is revoked.
//
// The revoked contact's sealed sends are refused (ErrSealedRefused at its
// end); it can still send with its name on the envelope if its user
// allows the fallback, which tells the relay who writes, by its own
// choice. The cost: contacts that have not heard from this account since
// the revocation, and strangers within the organization, are refused
// sealed too until this account writes to them (they hold the old profile
// key, or only the member key).

// RevokeContact revokes user's sealed access to this account (see above).
func (c *Client) RevokeContact(ctx context.Context, user string) error {
	return c.setRevoked(ctx, user, true)
}

// RestoreContact gives user's sealed access back after RevokeContact; it
// does nothing when user is not revoked.
func (c *Client) RestoreContact(ctx context.Context, user string) error {
	return c.setRevoked(ctx, user, false)
}

// Revoked reports whether user's sealed access was revoked.
func (c *Client) Revoked(ctx context.Context, user string) (bool, error) {
	return isRevoked(ctx, c.db, normalize(user))
}

// RevokedContacts lists the contacts whose sealed access is revoked,
// sorted.
func (c *Client) RevokedContacts(ctx context.Context) ([]string, error) {
	st, err := loadKeyState(ctx, c.db)
	if err != nil {
		return nil, err
	}
	return st.revokedUsers(), nil
}

func (c *Client) setRevoked(ctx context.Context, user string, revoked bool) error {
	user = normalize(user)
	if user == "" || user == c.acct.Username {
		return fmt.Errorf("client: cannot revoke or restore %q", user)
	}
	if _, err := loadTrustRoot(ctx, c.db); err != nil {
		return fmt.Errorf("client: revoke %s: this relay does no sealed sender: %w", user, err)
	}
	changed := false
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		st, err := loadKeyState(ctx, tx)
		if err != nil {
			return err
		}
		if st.revoked(user) == revoked && (revoked || st.key != nil) {
			return nil // already so (a repeated revocation rotates nothing)
		}
		changed = true
		st.epoch++
		st.revs[user] = revocation{epoch: st.epoch, revoked: revoked}
		if revoked || st.key == nil {
			pk := make([]byte, sealed.ProfileKeySize)
			if _, err := rand.Read(pk); err != nil {
				return fmt.Errorf("client: profile key: %w", err)
			}
			st.key = pk
			if err := resetProfileKeySends(ctx, tx); err != nil {
				return err
			}
		} else if err := tx.Delete(ctx, tblSealed, profileKeySent(user)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return saveKeyState(ctx, tx, st)
	})
	if err != nil || !changed {
		return err
	}
	var upErr error
	if conn, err := c.connection(); err != nil {
		upErr = fmt.Errorf("client: %s: the new access key is not uploaded yet (it will be on the next connection): %w", user, err)
	} else if err := c.uploadOwnAccessKey(ctx, conn); err != nil {
		upErr = fmt.Errorf("client: %s: the new access key is not uploaded yet (it will be on the next connection): %w", user, err)
	}
	if err := c.tellSiblings(ctx); err != nil {
		// They learn it with the next sync this device sends them.
		return errors.Join(upErr, fmt.Errorf("client: %s: the account's other devices are not told yet: %w", user, err))
	}
	return upErr
}
