package keylog

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"sotto/client/content"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/transparency"
	"sotto/wire"
)

// Head returns the newest verified signed head (nil: none yet).
func (l *Log) Head(ctx context.Context) (*transparency.SignedHead, error) {
	return loadHead(ctx, l.db)
}

func loadHead(ctx context.Context, db KV) (*transparency.SignedHead, error) {
	return loadStoredHead(ctx, db, rowHead, "key log head")
}

// loadStoredHead reads a signed head kept under name (nil: none).
func loadStoredHead(ctx context.Context, db KV, name, what string) (*transparency.SignedHead, error) {
	b, err := db.Get(ctx, Table, []byte(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h, err := transparency.DecodeHead(b)
	if err != nil {
		return nil, fmt.Errorf("keylog: stored %s: %w", what, err)
	}
	return &h, nil
}

// advanceHead checks that head and the newest verified head are consistent
// and keeps the larger. cons, when not empty, is the relay's proof from
// knownSize to head.Size; otherwise the relay is asked for one.
//
// db may be the store itself (not a transaction): the relay is then asked
// outside any transaction while other calls (the audit, gossip) may move
// the stored head. The new head is saved only if the stored one is still
// the one it was checked against (in one transaction); otherwise it is
// checked again against the head now stored, so the stored head only ever
// moves forward along one consistent log.
func (l *Log) advanceHead(ctx context.Context, relay Relay, db KV, head transparency.SignedHead, knownSize uint64, cons [][]byte, source string) error {
	for range 8 {
		old, err := loadHead(ctx, db)
		if err != nil {
			return err
		}
		if old != nil {
			larger, err := l.checkHeads(ctx, relay, old, head, knownSize, cons, source)
			if err != nil || !larger {
				return err
			}
		}
		saved, err := saveHead(ctx, db, old, head)
		if err != nil || saved {
			return err
		}
	}
	return fmt.Errorf("keylog: key log head: the stored head kept moving while %s's was checked", source)
}

// checkHeads checks that head and old (the stored head) are consistent
// and reports whether head is the larger.
func (l *Log) checkHeads(ctx context.Context, relay Relay, old *transparency.SignedHead, head transparency.SignedHead, knownSize uint64, cons [][]byte, source string) (bool, error) {
	fork := func(detail string) error {
		return fmt.Errorf("%w: %w", ErrFork, l.Raise(&Alarm{Kind: AlarmFork, User: l.cfg.User,
			Detail: detail, HeadA: old.Encode(), HeadB: head.Encode()}))
	}
	small, large := old, &head
	if head.Size < old.Size {
		small, large = &head, old
	}
	switch {
	case small.Size == large.Size:
		if small.Root != large.Root {
			return false, fork(fmt.Sprintf("two signed heads of size %d with different roots (the newer from %s)", head.Size, source))
		}
		return false, nil
	case small.Size == 0:
	default:
		var proof [][]byte
		if large == &head && knownSize == old.Size && len(cons) > 0 {
			proof = cons
		} else {
			r, err := relay.TransparencyConsistency(ctx, small.Size, large.Size)
			switch transport.Code(err) {
			case wire.ErrorCode_OK:
				proof = r.Proof
			case wire.ErrorCode_BAD_REQUEST, wire.ErrorCode_NOT_FOUND:
				return false, fork(fmt.Sprintf("the relay refuses a consistency proof between heads of size %d and %d it signed (%v)", small.Size, large.Size, err))
			default:
				return false, fmt.Errorf("keylog: key log consistency: %w", err)
			}
		}
		p, err := transparency.DecodeProof(proof)
		if err != nil || transparency.VerifyConsistency(small.Size, large.Size, small.Root, large.Root, p) != nil {
			return false, fork(fmt.Sprintf("the key log head of size %d (from %s) does not extend the one of size %d", large.Size, source, small.Size))
		}
	}
	return large == &head, nil
}

// saveHead stores head as the newest verified head if the stored one is
// still prev (nil: none), and reports whether it did.
func saveHead(ctx context.Context, db KV, prev *transparency.SignedHead, head transparency.SignedHead) (bool, error) {
	saved := false
	err := atomically(ctx, db, func(tx KV) error {
		cur, err := loadHead(ctx, tx)
		if err != nil {
			return err
		}
		if (cur == nil) != (prev == nil) || (cur != nil && !bytes.Equal(cur.Encode(), prev.Encode())) {
			return nil // moved meanwhile
		}
		saved = true
		return tx.Put(ctx, Table, []byte(rowHead), head.Encode())
	})
	return saved && err == nil, err
}

// AttachHead puts the newest verified head into ct on the first message to
// to since the log was made and whenever the head changed since. A device
// without a verified head yet asks relay for one (relay may be nil: then
// it does not).
func (l *Log) AttachHead(ctx context.Context, relay func() (Relay, error), to string, ct *content.Content) {
	head, err := loadHead(ctx, l.db)
	if err != nil {
		return
	}
	if head == nil {
		// A new device: get a first head to gossip.
		if head, err = l.fetchHead(ctx, relay); err != nil || head == nil {
			return
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gossiped == nil {
		l.gossiped = make(map[string]uint64)
	}
	if sent, ok := l.gossiped[to]; ok && sent == head.Size {
		return
	}
	l.gossiped[to] = head.Size
	ct.TransparencyHead = head.Encode()
}

// fetchHead asks the relay for its newest head and verifies it (nil: no
// pinned log key).
func (l *Log) fetchHead(ctx context.Context, relay func() (Relay, error)) (*transparency.SignedHead, error) {
	pub, err := LogKey(ctx, l.db)
	if err != nil || pub == nil {
		return nil, err
	}
	conn, err := relay()
	if err != nil {
		return nil, err
	}
	r, err := conn.TransparencyHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("keylog: key log head: %w", err)
	}
	head, err := transparency.VerifyHead(pub, r.SignedHead)
	if err != nil {
		return nil, fmt.Errorf("keylog: key log head: %w", err)
	}
	// The store itself, not a transaction: a consistency proof is asked
	// for outside any.
	err = l.advanceHead(ctx, conn, l.db, head, 0, nil, "the relay")
	if err == nil {
		err = l.acceptWitnessed(ctx, conn, head, r) // witness.go
	}
	l.Flush(ctx)
	if err != nil {
		return nil, err
	}
	return loadHead(ctx, l.db)
}

// NoteGossip queues a head received from a peer (it may be called inside
// the receive transaction); CheckGossip checks the queue once the
// transaction is done.
func (l *Log) NoteGossip(from string, head []byte) {
	if len(head) == 0 || from == "" {
		return
	}
	l.mu.Lock()
	if len(l.inbox) < 64 {
		l.inbox = append(l.inbox, gossip{from: from, head: bytes.Clone(head)})
	}
	l.mu.Unlock()
}

// CheckGossip checks the heads peers sent against the newest verified one.
// It runs outside any store transaction: relay may be asked for
// consistency proofs.
func (l *Log) CheckGossip(ctx context.Context, relay Relay) {
	l.mu.Lock()
	inbox := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	if len(inbox) == 0 {
		return
	}
	pub, err := LogKey(ctx, l.db)
	if err != nil || pub == nil {
		return
	}
	for _, g := range inbox {
		head, err := transparency.VerifyHead(pub, g.head)
		if err != nil {
			// Not signed by our log key: the peer pinned another key (or
			// sends garbage). Reported once per peer.
			l.mu.Lock()
			seen := l.strangers[g.from]
			if l.strangers == nil {
				l.strangers = make(map[string]bool)
			}
			l.strangers[g.from] = true
			l.mu.Unlock()
			if !seen {
				l.Raise(&Alarm{Kind: AlarmLogKeyMismatch, User: g.from, HeadB: g.head,
					Detail: fmt.Sprintf("%s sent a key log head that the log key pinned on this device did not sign: one of you was given another log key; compare `sotto keylog` with them out of band", g.from)})
			}
			continue
		}
		if cur, err := loadHead(ctx, l.db); err == nil && cur != nil && cur.Size == head.Size && cur.Root == head.Root {
			// The common case: the same head. Nothing to write.
			l.mu.Lock()
			l.checked++
			l.mu.Unlock()
			continue
		}
		err = l.advanceHead(ctx, relay, l.db, head, 0, nil, "gossip from "+g.from)
		if err == nil {
			err = l.noteWitness(ctx, l.db, head, nil) // witness.go: gossip carries no cosignature
		}
		if err != nil && !errors.Is(err, ErrFork) {
			if ctx.Err() == nil && !errors.Is(err, store.ErrLocked) {
				l.cfg.Logger.Warn("gossiped key log head not checked", "from", g.from, "err", err)
			}
			continue
		}
		l.mu.Lock()
		l.checked++
		l.mu.Unlock()
	}
	l.Flush(ctx)
}

// Stats reports how many gossiped heads were checked and how many audits
// finished (for tests).
func (l *Log) Stats() (gossipChecked, audits int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checked, l.audits
}
