package client

import (
	"context"
	"time"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/session"
	"sotto/wire"
)

const (
	// rotateAfter is the age at which the signed EC prekey and the
	// last-resort Kyber prekey are replaced, limiting what a later
	// compromise of the device reveals of sessions started with them.
	rotateAfter = 7 * 24 * time.Hour
	// keepRotated is how long replaced keys are kept, so that messages
	// already encrypted to them (queued while the device was offline)
	// still decrypt; the relay's mailbox keeps envelopes 30 days.
	keepRotated = 35 * 24 * time.Hour
)

// replenishPreKeys uploads a new batch of one-time prekeys when the relay
// holds too few, and rotates the signed and last-resort prekeys when they
// are missing at the relay or older than rotateAfter.
func (c *Client) replenishPreKeys(ctx context.Context, conn *transport.Conn) error {
	count, err := conn.PreKeyCount(ctx)
	if err != nil {
		return err
	}
	now := c.opts.Now()
	nEC, nKyber := 0, 0
	if count.OneTimePrekeys < replenishBelow {
		nEC = initialPreKeys
	}
	if count.OneTimeKyberPrekeys < replenishBelow/2 {
		nKyber = initialKyberPreKeys
	}
	acct, err := loadAccount(ctx, c.db)
	if err != nil {
		return err
	}
	rotate := !count.HasSignedPrekey || !count.HasLastResortKyber ||
		now.Sub(time.UnixMilli(acct.SignedPreKeyAt)) > rotateAfter
	if nEC == 0 && nKyber == 0 && !rotate {
		return nil
	}
	c.cryptoMu.Lock()
	var batch *wire.PreKeys
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		// The account record is re-read inside the transaction: another
		// process using the store may have allocated prekey ids.
		acct, err := loadAccount(ctx, tx)
		if err != nil {
			return err
		}
		if rotate {
			acct.SignedPreKeyID = nextID(acct.SignedPreKeyID)
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
		if err := saveAccount(ctx, tx, acct); err != nil {
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
// keepRotated; the current ones are always kept.
func pruneRotated(ctx context.Context, tx *store.Tx, acct *account, now time.Time) error {
	cutoff := now.Add(-keepRotated)
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
