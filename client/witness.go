package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/transparency"
	"sotto/wire"
)

// Witnessed key log heads (DESIGN §7). The org runs a witness away from
// the relay (package witness); it co-signs a tree of the relay's log only
// when shown that it extends the last one it co-signed. A relay showing two
// users two logs (a split view) can get at most one of them co-signed.
//
// With a witness key pinned, this client:
//   - marks the log witnessed up to the largest head it accepted (consistent
//     with its newest verified head, see advanceHead) that carries a valid
//     cosignature by that key;
//   - accepts a verified head without one provisionally, and records the
//     oldest such head beyond the witnessed size and when it first saw it;
//     when no witnessed head at or beyond its size comes within
//     Options.WitnessBound, it raises an `unwitnessed` alarm (once per
//     such head);
//   - raises `bad-cosignature` for a cosignature naming the pinned key that
//     does not verify, and never counts it.
//
// Without a pinned witness key nothing here runs.

const (
	ktWitnessKey  = "witness-key"
	ktWitnessed   = "witnessed"   // the largest witnessed head (encoded transparency.SignedHead)
	ktUnwitnessed = "unwitnessed" // unwitnessedRecord (JSON)

	// DefaultWitnessBound is how long a head may stay unwitnessed.
	DefaultWitnessBound = 24 * time.Hour
)

const (
	// AlarmUnwitnessed: a head the relay served was not followed, within
	// Options.WitnessBound, by a head at least as large that the pinned
	// witness co-signed: the relay may be showing this device a log the
	// witness refused (a split view), or withholding the cosignatures.
	AlarmUnwitnessed AlarmKind = "unwitnessed"
	// AlarmBadCosignature: a head came with a cosignature naming the pinned
	// witness key that does not verify.
	AlarmBadCosignature AlarmKind = "bad-cosignature"
)

// unwitnessedRecord is the oldest accepted head beyond the witnessed size.
type unwitnessedRecord struct {
	Head      []byte    `json:"head"`
	Size      uint64    `json:"size"`
	FirstSeen time.Time `json:"first_seen"`
	Alarmed   bool      `json:"alarmed,omitempty"`
}

// pinWitnessKey pins the org witness's Ed25519 public key (an empty key:
// no witness, nothing is stored). The enrollment and linking code call it
// with the key the org's invitation (or the approving device) carries.
func pinWitnessKey(ctx context.Context, db kv, key []byte) error {
	return pinKey(ctx, db, ktWitnessKey, "the key log witness key", key)
}

// witnessKey returns the pinned witness key (nil: none pinned).
func witnessKey(ctx context.Context, db kv) (ed25519.PublicKey, error) {
	return pinnedKey(ctx, db, ktWitnessKey)
}

func loadWitnessed(ctx context.Context, db kv) (*transparency.SignedHead, error) {
	return loadStoredHead(ctx, db, ktWitnessed, "witnessed head")
}

func loadUnwitnessed(ctx context.Context, db kv) (*unwitnessedRecord, error) {
	b, err := db.Get(ctx, tblTransparency, []byte(ktUnwitnessed))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var u unwitnessedRecord
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("client: stored unwitnessed head: %w", err)
	}
	return &u, nil
}

func putUnwitnessed(ctx context.Context, db kv, u *unwitnessedRecord) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return db.Put(ctx, tblTransparency, []byte(ktUnwitnessed), b)
}

// WitnessPublicKey returns the pinned key of the org's key log witness
// (nil: none pinned, and a split view is not detectable).
func (c *Client) WitnessPublicKey(ctx context.Context) ([]byte, error) { return witnessKey(ctx, c.db) }

// WitnessedHead returns the largest head this device accepted with a valid
// cosignature of the pinned witness (nil: none yet).
func (c *Client) WitnessedHead(ctx context.Context) (*transparency.SignedHead, error) {
	return loadWitnessed(ctx, c.db)
}

// noteWitness records what head's cosignatures say. head must be verified
// and accepted by advanceHead (consistent with the newest verified head).
func (c *Client) noteWitness(ctx context.Context, db kv, head transparency.SignedHead, cosigs [][]byte) error {
	wk, err := witnessKey(ctx, db)
	if err != nil || wk == nil {
		return err
	}
	lk, err := logKey(ctx, db)
	if err != nil || lk == nil {
		return err
	}
	ok, bad := transparency.FindCosignature(wk, lk, head.Size, head.Root, cosigs)
	if bad > 0 {
		c.alarm(&TransparencyAlarm{Kind: AlarmBadCosignature, User: c.acct.Username, HeadA: head.Encode(),
			Detail: fmt.Sprintf("the key log head of size %d came with a cosignature of the pinned witness that does not verify; it was not counted", head.Size)})
	}
	now := c.opts.Now()
	return atomically(ctx, db, func(tx kv) error {
		w, err := loadWitnessed(ctx, tx)
		if err != nil {
			return err
		}
		u, err := loadUnwitnessed(ctx, tx)
		if err != nil {
			return err
		}
		if ok && (w == nil || head.Size > w.Size) {
			if err := tx.Put(ctx, tblTransparency, []byte(ktWitnessed), head.Encode()); err != nil {
				return err
			}
			w = &head
		}
		if u != nil && w != nil && w.Size >= u.Size {
			return tx.Delete(ctx, tblTransparency, []byte(ktUnwitnessed))
		}
		if !ok && u == nil && (w == nil || head.Size > w.Size) {
			return putUnwitnessed(ctx, tx, &unwitnessedRecord{Head: head.Encode(), Size: head.Size, FirstSeen: now})
		}
		return nil
	})
}

// checkUnwitnessed raises the `unwitnessed` alarm when the oldest head
// not yet witnessed has waited longer than the bound.
func (c *Client) checkUnwitnessed(ctx context.Context, db kv) error {
	bound := c.witnessBound(ctx)
	return atomically(ctx, db, func(tx kv) error {
		u, err := loadUnwitnessed(ctx, tx)
		if err != nil || u == nil || u.Alarmed || c.opts.Now().Sub(u.FirstSeen) <= bound {
			return err
		}
		w, err := loadWitnessed(ctx, tx)
		if err != nil {
			return err
		}
		witnessed := "none"
		var wenc []byte
		if w != nil {
			witnessed, wenc = fmt.Sprintf("size %d", w.Size), w.Encode()
		}
		c.alarm(&TransparencyAlarm{Kind: AlarmUnwitnessed, User: c.acct.Username, HeadA: u.Head, HeadB: wenc,
			Detail: fmt.Sprintf("the key log head of size %d, first seen %s, has not been co-signed by the org's witness (witnessed: %s): the relay may be showing you a log others do not see",
				u.Size, u.FirstSeen.UTC().Format(time.RFC3339), witnessed)})
		u.Alarmed = true
		return putUnwitnessed(ctx, tx, u)
	})
}

// acceptWitnessed handles the witness part of a TransparencyHead answer
// whose head was accepted: its cosignatures, then the newest witnessed head
// the relay holds, which must be consistent with the newest verified head
// like any other (a relay holding a witnessed head of another log than
// the one it shows this device is caught as a fork here). db is the store,
// not a transaction: the relay may be asked for a consistency proof.
func (c *Client) acceptWitnessed(ctx context.Context, conn *transport.Conn, head transparency.SignedHead, r *wire.TransparencyHead) error {
	wk, err := witnessKey(ctx, c.db)
	if err != nil || wk == nil {
		return err
	}
	if err := c.noteWitness(ctx, c.db, head, r.GetCosignatures()); err != nil {
		return err
	}
	if len(r.GetWitnessedHead()) > 0 {
		pub, err := logKey(ctx, c.db)
		if err != nil {
			return err
		}
		wh, err := transparency.VerifyHead(pub, r.GetWitnessedHead())
		if err != nil {
			return fmt.Errorf("client: witnessed key log head: %w", err)
		}
		if wh.Size != head.Size || wh.Root != head.Root {
			if err := c.advanceHead(ctx, conn, c.db, wh, 0, nil, "the relay (its witnessed head)"); err != nil {
				return err
			}
		}
		if err := c.noteWitness(ctx, c.db, wh, r.GetWitnessedCosignatures()); err != nil {
			return err
		}
	}
	return c.checkUnwitnessed(ctx, c.db)
}

// witnessBound is the org policy's bound on unwitnessed heads, else the
// client's (Options.WitnessBound).
func (c *Client) witnessBound(ctx context.Context) time.Duration {
	if p, err := c.OrgPolicy(ctx); err == nil && p.GetWitnessBoundSeconds() > 0 {
		return time.Duration(p.GetWitnessBoundSeconds()) * time.Second
	}
	return c.opts.WitnessBound
}
