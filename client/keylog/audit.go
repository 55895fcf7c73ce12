package keylog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"sotto/client/store"
	"sotto/transparency"
)

const auditBatch = 1000

// SiblingAlarm is a foreign-key finding of an audit, to report to the
// account's other devices.
type SiblingAlarm struct {
	Leaf  []byte
	Index uint64
	Head  []byte
}

// Audit reads the key log leaves appended since the last audit, alarms on
// any binding of this account's username to another identity key, and
// checks that the leaves hash to the relay's signed head. It returns how
// many leaves it read. One audit runs at a time; every relay request is
// made outside any store transaction. Foreign-key findings are queued for
// TakeSiblingAlarms.
func (l *Log) Audit(ctx context.Context, relay Relay) (int, error) {
	l.auditMu.Lock()
	defer l.auditMu.Unlock()
	defer func() {
		l.mu.Lock()
		l.audits++
		l.mu.Unlock()
	}()
	defer l.Flush(ctx)
	pub, err := LogKey(ctx, l.db)
	if err != nil || pub == nil {
		return 0, err
	}
	var f transparency.Frontier
	switch b, err := l.db.Get(ctx, Table, []byte(rowAudit)); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return 0, err
	default:
		if f, err = transparency.DecodeFrontier(b); err != nil {
			return 0, fmt.Errorf("keylog: stored audit state: %w", err)
		}
	}
	r, err := relay.TransparencyHead(ctx)
	if err != nil {
		return 0, fmt.Errorf("keylog: key log head: %w", err)
	}
	head, err := transparency.VerifyHead(pub, r.SignedHead)
	if err != nil {
		return 0, fmt.Errorf("keylog: key log head: %w", err)
	}
	if err := l.advanceHead(ctx, relay, l.db, head, 0, nil, "the relay"); err != nil {
		return 0, err
	}
	if err := l.acceptWitnessed(ctx, relay, head, r); err != nil { // witness.go
		return 0, err
	}
	if head.Size < f.Size {
		return 0, nil // an older head; the next audit goes on
	}
	own := l.cfg.IdentityKey()
	read := 0
	for f.Size < head.Size {
		n := min(uint64(auditBatch), head.Size-f.Size)
		lr, err := relay.TransparencyLeaves(ctx, f.Size, uint32(n))
		if err != nil {
			return read, fmt.Errorf("keylog: key log leaves: %w", err)
		}
		if len(lr.Leaves) == 0 || lr.Start != f.Size {
			return read, fmt.Errorf("keylog: key log leaves: the relay returned none from %d of %d", f.Size, head.Size)
		}
		for _, leaf := range lr.Leaves[:min(uint64(len(lr.Leaves)), n)] {
			idx := f.Size
			if b, err := transparency.DecodeBinding(leaf); err != nil {
				l.Raise(&Alarm{Kind: AlarmBadLog, Detail: fmt.Sprintf("key log leaf %d is malformed", idx), Leaf: leaf, LeafIndex: idx, HeadA: head.Encode()})
			} else if b.Username == l.cfg.User && !bytes.Equal(b.IdentityKey, own) {
				l.Raise(&Alarm{Kind: AlarmForeignKey, User: l.cfg.User, Leaf: leaf, LeafIndex: idx, HeadA: head.Encode(),
					Detail: fmt.Sprintf("the key log binds your username %q to an identity key that is not yours (leaf %d): someone can be shown a key that is not yours", b.Username, idx)})
				l.mu.Lock()
				l.siblings = append(l.siblings, SiblingAlarm{Leaf: leaf, Index: idx, Head: head.Encode()})
				l.mu.Unlock()
			}
			if err := f.Append(transparency.LeafHash(leaf)); err != nil {
				return read, err
			}
			read++
		}
		// Keep what was read: the frontier holds every leaf's hash so far,
		// so the root check at the end still covers them all.
		if f.Size < head.Size {
			if err := l.db.Put(ctx, Table, []byte(rowAudit), f.Encode()); err != nil {
				return read, err
			}
		}
	}
	if f.Root() != head.Root {
		l.Raise(&Alarm{Kind: AlarmBadLog, HeadA: head.Encode(),
			Detail: fmt.Sprintf("the key log leaves the relay served do not hash to its signed head of size %d", head.Size)})
		return read, fmt.Errorf("%w: audit root mismatch", ErrFork)
	}
	if err := l.db.Put(ctx, Table, []byte(rowAudit), f.Encode()); err != nil {
		return read, err
	}
	return read, nil
}

// TakeSiblingAlarms returns the foreign-key findings not yet reported to
// the account's other devices, and forgets them.
func (l *Log) TakeSiblingAlarms() []SiblingAlarm {
	l.mu.Lock()
	defer l.mu.Unlock()
	todo := l.siblings
	l.siblings = nil
	return todo
}

// ReturnSiblingAlarms puts findings that could not be reported back in
// front of the queue, for the next try.
func (l *Log) ReturnSiblingAlarms(todo []SiblingAlarm) {
	l.mu.Lock()
	l.siblings = append(todo, l.siblings...)
	l.mu.Unlock()
}

// NoteSiblingAlarm checks a foreign-key finding an own device reported
// (the leaf, its index and the head it was read under) against the pinned
// log key and the account's own key, and keeps it as an alarm. It reports
// why it does not hold (nil: kept).
func (l *Log) NoteSiblingAlarm(ctx context.Context, from uint32, leaf []byte, index uint64, headEnc []byte) error {
	pub, err := LogKey(ctx, l.db)
	if err != nil || pub == nil {
		return err
	}
	head, err := transparency.VerifyHead(pub, headEnc)
	if err != nil {
		return errors.New("keylog: an own device reported a foreign-key alarm under a head the pinned log key did not sign")
	}
	b, err := transparency.DecodeBinding(leaf)
	if err != nil || b.Username != l.cfg.User || bytes.Equal(b.IdentityKey, l.cfg.IdentityKey()) || index >= head.Size {
		return errors.New("keylog: an own device reported a foreign-key alarm that does not hold")
	}
	l.Raise(&Alarm{Kind: AlarmForeignKey, User: l.cfg.User, Leaf: leaf, LeafIndex: index, HeadA: headEnc,
		Detail: fmt.Sprintf("your device %d found that the key log binds your username %q to an identity key that is not yours (leaf %d): someone can be shown a key that is not yours", from, b.Username, index)})
	l.Flush(ctx)
	return nil
}
