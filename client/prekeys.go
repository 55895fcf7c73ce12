package client

// The prekeys (client/account makes them, the Signal store keeps their
// private halves): the refill on connect and the pruning of rotated ones.

import (
	"context"
	"time"

	"sotto/client/account"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/session"
	"sotto/wire"
)

// replenishPreKeys uploads a new batch of one-time prekeys when the relay
// holds too few, and rotates the signed and last-resort prekeys when they
// are missing at the relay or older than account.RotateAfter.
func (c *Client) replenishPreKeys(ctx context.Context, conn *transport.Conn) error {
	count, err := conn.PreKeyCount(ctx)
	if err != nil {
		return err
	}
	now := c.opts.Now()
	acct, err := account.Load(ctx, c.db)
	if err != nil {
		return err
	}
	nEC, nKyber, rotate := account.Plan(count, acct, now)
	if nEC == 0 && nKyber == 0 && !rotate {
		return nil
	}
	c.cryptoMu.Lock()
	var batch *wire.PreKeys
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		// The account record is re-read inside the transaction: another
		// process using the store may have allocated prekey ids.
		acct, err := account.Load(ctx, tx)
		if err != nil {
			return err
		}
		if rotate {
			acct.SignedPreKeyID = account.NextID(acct.SignedPreKeyID)
		}
		b, err := generatePreKeys(ctx, tx, acct, c.identity, nEC, nKyber, rotate, now)
		if err != nil {
			return err
		}
		if rotate {
			if err := pruneRotated(ctx, tx, acct, now); err != nil {
				return err
			}
		}
		if err := account.Save(ctx, tx, acct); err != nil {
			return err
		}
		batch = b
		return nil
	})
	c.cryptoMu.Unlock()
	if err != nil {
		return err
	}
	c.log.Debug("uploading prekeys", "ec", len(batch.OneTimePrekeys), "kyber", len(batch.OneTimeKyberPrekeys), "rotated", rotate)
	return conn.UploadPreKeys(ctx, batch)
}

// pruneRotated deletes replaced signed and last-resort prekeys older than
// account.KeepRotated; the current ones are always kept.
func pruneRotated(ctx context.Context, tx *store.Tx, acct *account.Account, now time.Time) error {
	cutoff := now.Add(-account.KeepRotated)
	signed, err := tx.List(ctx, tblSigned)
	if err != nil {
		return err
	}
	for _, e := range signed {
		r, err := session.ParseSignedPreKeyRecord(e.Value)
		if err != nil {
			return err
		}
		if r.ID() != acct.SignedPreKeyID && r.Timestamp().Before(cutoff) {
			if err := tx.Delete(ctx, tblSigned, e.Key); err != nil {
				return err
			}
		}
	}
	kyber, err := tx.List(ctx, tblKyber)
	if err != nil {
		return err
	}
	for _, e := range kyber {
		if len(e.Value) == 0 || e.Value[0] != 1 {
			continue // one-time keys go when used
		}
		r, err := session.ParseKyberPreKeyRecord(e.Value[1:])
		if err != nil {
			return err
		}
		if r.ID() != acct.LastResortID && r.Timestamp().Before(cutoff) {
			if err := tx.Delete(ctx, tblKyber, e.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// generatePreKeys makes a batch of prekeys into the Signal store over db
// (account.Generate).
func generatePreKeys(ctx context.Context, db kv, a *account.Account, identity *session.IdentityKeyPair, nEC, nKyber int, first bool, now time.Time) (*wire.PreKeys, error) {
	ss := &sigStore{db: db, self: a.Username, identity: identity, regID: a.RegistrationID}
	return account.Generate(ctx, ss, a, identity, nEC, nKyber, first, now)
}
