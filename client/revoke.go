package client

import (
	"context"
	"errors"
	"fmt"

	"sotto/client/content"
	"sotto/client/sealedsender"
	"sotto/client/transport"
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
//   - tells the account's other devices (tellSiblings below), which keep the
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
	return sealedsender.IsRevoked(ctx, c.db, normalize(user))
}

// RevokedContacts lists the contacts whose sealed access is revoked,
// sorted.
func (c *Client) RevokedContacts(ctx context.Context) ([]string, error) {
	st, err := sealedsender.LoadState(ctx, c.db)
	if err != nil {
		return nil, err
	}
	return st.RevokedUsers(), nil
}

func (c *Client) setRevoked(ctx context.Context, user string, revoked bool) error {
	user = normalize(user)
	if user == "" || user == c.acct.Username {
		return fmt.Errorf("client: cannot revoke or restore %q", user)
	}
	if _, err := sealedsender.TrustRoot(ctx, c.db); err != nil {
		return fmt.Errorf("client: revoke %s: this relay does no sealed sender: %w", user, err)
	}
	changed, err := sealedsender.SetRevoked(ctx, c.db, user, revoked)
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

// The profile key state is shared by the account's devices
// (sealedsender/state.go); the functions below are what the client does
// when it changes: the upload, and the DeviceOrder to the own other
// devices.

// keyStateChanged acts, after commit, on a state merged from a sibling:
// the access key is uploaded at once (not on the next send), and a key
// made here is announced to the siblings.
func (c *Client) keyStateChanged(ctx context.Context, conn *transport.Conn, rotated bool) {
	if err := c.uploadOwnAccessKey(ctx, conn); err != nil && ctx.Err() == nil {
		c.log.Warn("access key not uploaded after an own device's profile key change", "err", err)
	}
	if !rotated {
		return
	}
	if err := c.tellSiblings(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("the other devices are not told of the new profile key yet", "err", err)
	}
}

// tellSiblings sends the profile key state to the account's other devices
// (sealedsender.Sender.Attach attaches it). No other device is no error.
func (c *Client) tellSiblings(ctx context.Context) error {
	ct, err := content.NewProfileKeyStateOrder(c.opts.Now())
	if err != nil {
		return err
	}
	if _, err := c.sendContent(ctx, c.acct.Username, ct, ct.Id); err != nil && !errors.Is(err, ErrNoDevices) {
		return err
	}
	return nil
}

// sealedFromRevoked: a sealed message came from a revoked contact, which
// an honest relay refuses. The relay holds an older key, or no refusal of
// the member key: the access key is uploaded again at once.
func (c *Client) sealedFromRevoked(ctx context.Context, conn *transport.Conn, user string) {
	c.log.Warn("a sealed message came from a contact whose sealed access is revoked: the relay did not refuse it; uploading the access key again", "from", user)
	if err := c.uploadOwnAccessKey(ctx, conn); err != nil && ctx.Err() == nil {
		c.log.Warn("access key not uploaded", "err", err)
	}
}
