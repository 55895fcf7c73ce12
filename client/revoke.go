package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/sealed"
)

// Per-contact revocation of sealed access. A contact sends sealed to this
// account with the access key of its profile key, or with the
// organization's member access key, which every member holds. To stop
// one contact (a colleague who turned hostile, a device known stolen)
// without stopping the others, RevokeContact:
//
//   - makes a new profile key and uploads its access key, so the key the
//     revoked contact holds is refused;
//   - has the relay refuse the member access key for this account
//     (SetAccessKeyRequest.refuse_member_access), which the contact keeps;
//   - shares the new profile key again with every other contact, with the
//     next messages to them, never with the revoked one.
//
// The revoked contact's sealed sends are refused (ErrSealedRefused at its
// end); it can still send with its name on the envelope if its user
// allows the fallback, which tells the relay who writes, by its own
// choice. The cost: contacts that have not heard from this account since
// the revocation, and strangers within the organization, are refused
// sealed too until this account writes to them (they hold the old profile
// key, or only the member key). Limit: an account with linked devices
// keeps the lowest profile key its devices share (learnProfileKey), so a
// sibling may bring the old key back; revocation is for one-device
// accounts until profile keys carry a version.

var keyRefuseMember = []byte("refuse-member-access")

func revokedKey(user string) []byte { return []byte("revoked/" + user) }

// RevokeContact revokes user's sealed access to this account (see above).
func (c *Client) RevokeContact(ctx context.Context, user string) error {
	user = normalize(user)
	if user == "" || user == c.acct.Username {
		return fmt.Errorf("client: cannot revoke %q", user)
	}
	if _, err := loadTrustRoot(ctx, c.db); err != nil {
		return fmt.Errorf("client: revoke %s: this relay does no sealed sender: %w", user, err)
	}
	pk := make([]byte, sealed.ProfileKeySize)
	if _, err := rand.Read(pk); err != nil {
		return fmt.Errorf("client: profile key: %w", err)
	}
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		if err := resetProfileKeySends(ctx, tx); err != nil {
			return err
		}
		if err := tx.Put(ctx, tblSealed, revokedKey(user), []byte{1}); err != nil {
			return err
		}
		if err := tx.Put(ctx, tblSealed, keyRefuseMember, []byte{1}); err != nil {
			return err
		}
		return tx.Put(ctx, tblSealed, keyProfile, pk)
	})
	if err != nil {
		return err
	}
	conn, err := c.connection()
	if err != nil {
		return fmt.Errorf("client: revoke %s: the new access key is not uploaded yet (it will be on the next connection): %w", user, err)
	}
	ak, err := sealed.DeriveAccessKey(pk)
	if err != nil {
		return err
	}
	return c.uploadAccessKey(ctx, conn, ak)
}

// Revoked reports whether user's sealed access was revoked.
func (c *Client) Revoked(ctx context.Context, user string) (bool, error) {
	_, err := c.db.Get(ctx, tblSealed, revokedKey(normalize(user)))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// refusesMember reports whether this account refuses the member access
// key (it revoked a contact).
func (c *Client) refusesMember(ctx context.Context) bool {
	_, err := c.db.Get(ctx, tblSealed, keyRefuseMember)
	return err == nil
}

// accessKeyMark is what keyAccessSet records of an upload: the access key,
// and whether the member key was refused with it.
func accessKeyMark(ak []byte, refuseMember bool) []byte {
	if !refuseMember {
		return ak
	}
	return append(append([]byte(nil), ak...), 1)
}

// uploadAccessKey sets access key ak at the relay, with this account's
// refusal of the member key, and records the upload.
func (c *Client) uploadAccessKey(ctx context.Context, conn *transport.Conn, ak []byte) error {
	refuse := c.refusesMember(ctx)
	if err := conn.SetAccessKeyRefusing(ctx, ak, refuse); err != nil {
		return fmt.Errorf("client: upload access key: %w", err)
	}
	return c.db.Put(ctx, tblSealed, keyAccessSet, accessKeyMark(ak, refuse))
}
