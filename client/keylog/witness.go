package keylog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sotto/client/store"
	"sotto/transparency"
	"sotto/wire"
)

// Witnessed key log heads (DESIGN §7). The org runs a witness away from
// the relay (package witness); it co-signs a tree of the relay's log only
// when shown that it extends the last one it co-signed. A relay showing two
// users two logs (a split view) can get at most one of them co-signed.
//
// With a witness key pinned, a Log:
//   - marks the log witnessed up to the largest head it accepted (consistent
//     with its newest verified head, see advanceHead) that carries a valid
//     cosignature by that key;
//   - accepts a verified head without one provisionally, and records the
//     oldest such head beyond the witnessed size and when it first saw it;
//     when no witnessed head at or beyond its size comes within
//     Config.WitnessBound, it raises an `unwitnessed` alarm (once per
//     such head);
//   - raises `bad-cosignature` for a cosignature naming the pinned key that
//     does not verify, and never counts it.
//
// Without a pinned witness key nothing here runs.

// DefaultWitnessBound is how long a head may stay unwitnessed.
const DefaultWitnessBound = 24 * time.Hour

// unwitnessedRecord is the oldest accepted head beyond the witnessed size.
type unwitnessedRecord struct {
	Head      []byte    `json:"head"`
	Size      uint64    `json:"size"`
	FirstSeen time.Time `json:"first_seen"`
	Alarmed   bool      `json:"alarmed,omitempty"`
}

// WitnessedHead returns the largest head this device accepted with a valid
// cosignature of the pinned witness (nil: none yet).
func (l *Log) WitnessedHead(ctx context.Context) (*transparency.SignedHead, error) {
	return loadWitnessed(ctx, l.db)
}

func loadWitnessed(ctx context.Context, db KV) (*transparency.SignedHead, error) {
	return loadStoredHead(ctx, db, rowWitnessed, "witnessed head")
}

func loadUnwitnessed(ctx context.Context, db KV) (*unwitnessedRecord, error) {
	b, err := db.Get(ctx, Table, []byte(rowUnwitnessed))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var u unwitnessedRecord
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("keylog: stored unwitnessed head: %w", err)
	}
	return &u, nil
}

func putUnwitnessed(ctx context.Context, db KV, u *unwitnessedRecord) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return db.Put(ctx, Table, []byte(rowUnwitnessed), b)
}

// noteWitness records what head's cosignatures say. head must be verified
// and accepted by advanceHead (consistent with the newest verified head).
func (l *Log) noteWitness(ctx context.Context, db KV, head transparency.SignedHead, cosigs [][]byte) error {
	wk, err := WitnessKey(ctx, db)
	if err != nil || wk == nil {
		return err
	}
	lk, err := LogKey(ctx, db)
	if err != nil || lk == nil {
		return err
	}
	ok, bad := transparency.FindCosignature(wk, lk, head.Size, head.Root, cosigs)
	if bad > 0 {
		l.Raise(&Alarm{Kind: AlarmBadCosignature, User: l.cfg.User, HeadA: head.Encode(),
			Detail: fmt.Sprintf("the key log head of size %d came with a cosignature of the pinned witness that does not verify; it was not counted", head.Size)})
	}
	now := l.cfg.Now()
	return atomically(ctx, db, func(tx KV) error {
		w, err := loadWitnessed(ctx, tx)
		if err != nil {
			return err
		}
		u, err := loadUnwitnessed(ctx, tx)
		if err != nil {
			return err
		}
		if ok && (w == nil || head.Size > w.Size) {
			if err := tx.Put(ctx, Table, []byte(rowWitnessed), head.Encode()); err != nil {
				return err
			}
			w = &head
		}
		if u != nil && w != nil && w.Size >= u.Size {
			return tx.Delete(ctx, Table, []byte(rowUnwitnessed))
		}
		if !ok && u == nil && (w == nil || head.Size > w.Size) {
			return putUnwitnessed(ctx, tx, &unwitnessedRecord{Head: head.Encode(), Size: head.Size, FirstSeen: now})
		}
		return nil
	})
}

// checkUnwitnessed raises the `unwitnessed` alarm when the oldest head
// not yet witnessed has waited longer than the bound.
func (l *Log) checkUnwitnessed(ctx context.Context) error {
	bound := l.cfg.WitnessBound(ctx)
	return atomically(ctx, l.db, func(tx KV) error {
		u, err := loadUnwitnessed(ctx, tx)
		if err != nil || u == nil || u.Alarmed || l.cfg.Now().Sub(u.FirstSeen) <= bound {
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
		l.Raise(&Alarm{Kind: AlarmUnwitnessed, User: l.cfg.User, HeadA: u.Head, HeadB: wenc,
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
// the one it shows this device is caught as a fork here). It works on the
// store, not a transaction: the relay may be asked for a consistency proof.
func (l *Log) acceptWitnessed(ctx context.Context, relay Relay, head transparency.SignedHead, r *wire.TransparencyHead) error {
	wk, err := WitnessKey(ctx, l.db)
	if err != nil || wk == nil {
		return err
	}
	if err := l.noteWitness(ctx, l.db, head, r.GetCosignatures()); err != nil {
		return err
	}
	if len(r.GetWitnessedHead()) > 0 {
		pub, err := LogKey(ctx, l.db)
		if err != nil {
			return err
		}
		wh, err := transparency.VerifyHead(pub, r.GetWitnessedHead())
		if err != nil {
			return fmt.Errorf("keylog: witnessed key log head: %w", err)
		}
		if wh.Size != head.Size || wh.Root != head.Root {
			if err := l.advanceHead(ctx, relay, l.db, wh, 0, nil, "the relay (its witnessed head)"); err != nil {
				return err
			}
		}
		if err := l.noteWitness(ctx, l.db, wh, r.GetWitnessedCosignatures()); err != nil {
			return err
		}
	}
	return l.checkUnwitnessed(ctx)
}
