package client

import (
	"context"
	"time"

	"sotto/client/store"
)

// The idle lock. An interactive front end locks the client after the org
// policy's idle lock timeout (IdleLockTimeout) without user input: Lock
// disconnects from the relay (what arrives stays queued there) and zeroes
// the store's keys; Unlock re-derives them from the passphrase, with the
// same failed-unlock counting and duress handling as opening the store.
// The front end reconnects after Unlock.

// ErrLocked reports an operation on a locked client (store.ErrLocked).
var ErrLocked = store.ErrLocked

// IdleLockTimeout is the idle lock timeout of the org policy in force (0:
// none).
func (c *Client) IdleLockTimeout(ctx context.Context) (time.Duration, error) {
	p, err := c.OrgPolicy(ctx)
	if err != nil {
		return 0, err
	}
	return p.IdleLock(), nil
}

// Lock disconnects and zeroes the store's keys until Unlock.
func (c *Client) Lock() {
	c.Disconnect()
	c.db.Lock()
}

// Locked reports whether the client is locked.
func (c *Client) Locked() bool { return c.db.Locked() }

// Unlock re-derives the store's keys from passphrase (see store.Unlock for
// its errors: a wrong passphrase is counted, the duress passphrase wipes)
// and deletes the disappearing messages that fell due while locked.
func (c *Client) Unlock(ctx context.Context, passphrase []byte) error {
	if err := c.db.Unlock(ctx, passphrase); err != nil {
		return err
	}
	_, err := c.ExpireMessages(ctx)
	return err
}
