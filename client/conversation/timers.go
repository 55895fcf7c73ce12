package conversation

// Disappearing messages: the rules (the client's disappear.go runs them).
//
// A conversation has a timer (0: off); the newest change, by its author's
// clock, wins. A message's timer starts on each device when the message
// is stored there; each stored disappearing message has an entry in the
// expiry table (peer, author, id -> deadline, 8 bytes big-endian Unix
// milliseconds), which Expire sweeps.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"sotto/client/content"
	"sotto/client/store"
)

// Tables of the disappearing timers.
const (
	TableExpiry = "expiry"
	TableTimers = "conv-timers"
)

// TimerRecord is a conversation's timer as stored.
type TimerRecord struct {
	Seconds uint32 `json:"seconds"`
	AtMs    int64  `json:"at_ms"` // its author's clock, for newest-wins
}

// CheckTimer refuses a timer out of range (ErrBadTimer): negative, under a
// second but not off, or over content.MaxTimerSeconds.
func CheckTimer(d time.Duration) error {
	if d < 0 || (d > 0 && d < time.Second) || d > content.MaxTimerSeconds*time.Second {
		return ErrBadTimer
	}
	return nil
}

// LoadTimer returns the timer of the conversation with peer (zero: off).
func LoadTimer(ctx context.Context, db Store, peer string) (TimerRecord, error) {
	var t TimerRecord
	b, err := db.Get(ctx, TableTimers, []byte(peer))
	if errors.Is(err, store.ErrNotFound) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("conversation: timer record: %w", err)
	}
	return t, nil
}

// SetTimer records a change of peer's conversation timer made at at (its
// author's clock), unless a newer change is in force.
func SetTimer(ctx context.Context, db Store, peer string, secs uint32, at time.Time) error {
	t, err := LoadTimer(ctx, db, peer)
	if err != nil {
		return err
	}
	if t.AtMs > at.UnixMilli() {
		return nil // a newer change is in force
	}
	b, err := json.Marshal(TimerRecord{Seconds: secs, AtMs: at.UnixMilli()})
	if err != nil {
		return fmt.Errorf("conversation: timer record: %w", err)
	}
	return db.Put(ctx, TableTimers, []byte(peer), b)
}

// SetExpiry starts m's timer of secs seconds (0: none) at now.
func SetExpiry(m *Message, secs uint32, now time.Time) {
	if secs == 0 {
		return
	}
	m.ExpireSeconds = secs
	m.ExpiresAt = now.Add(time.Duration(secs) * time.Second)
}

func expiryKey(peer, author string, id []byte) []byte {
	return append([]byte(peer+"\x00"+author+"\x00"), id...)
}

func parseExpiryKey(k []byte) (peer, author string, id []byte, ok bool) {
	var parts [2]string
	for i := range parts {
		j := bytes.IndexByte(k, 0)
		if j < 0 {
			return "", "", nil, false
		}
		parts[i], k = string(k[:j]), k[j+1:]
	}
	return parts[0], parts[1], k, len(k) == content.IDSize
}

// ScheduleExpiry records when m (written by author) disappears.
func ScheduleExpiry(ctx context.Context, db Store, author string, m *Message) error {
	if m.ExpiresAt.IsZero() {
		return nil
	}
	return db.Put(ctx, TableExpiry, expiryKey(m.Peer, author, m.ID), binary.BigEndian.AppendUint64(nil, uint64(m.ExpiresAt.UnixMilli())))
}

func due(e store.Entry, now int64) bool {
	return len(e.Value) == 8 && int64(binary.BigEndian.Uint64(e.Value)) <= now
}

// AnyDue reports whether a message is due at now: a read, so that a sweep
// with nothing due takes no write lock.
func AnyDue(ctx context.Context, db Store, now time.Time) (bool, error) {
	pending, err := db.List(ctx, TableExpiry)
	if err != nil {
		return false, err
	}
	ms := now.UnixMilli()
	return slices.ContainsFunc(pending, func(e store.Entry) bool { return due(e, ms) }), nil
}

// Sweeper is a store transaction that can also erase a message.
type Sweeper interface {
	Store
	DeleteMessage(ctx context.Context, conv string, id []byte) (bool, error)
}

// Expire deletes, in tx, every message due at now and its expiry entry,
// calling each first for every due message (the facade drops its file
// record there). It returns the messages deleted (id, peer and author
// only) and whether it changed anything (an entry may outlive its
// message).
func Expire(ctx context.Context, tx Sweeper, now time.Time, each func(peer, author string, id []byte) error) ([]*Message, bool, error) {
	entries, err := tx.List(ctx, TableExpiry)
	if err != nil {
		return nil, false, err
	}
	ms := now.UnixMilli()
	var gone []*Message
	changed := false
	for _, e := range entries {
		if !due(e, ms) {
			continue
		}
		if err := tx.Delete(ctx, TableExpiry, e.Key); err != nil {
			return nil, false, err
		}
		changed = true
		peer, author, id, ok := parseExpiryKey(e.Key)
		if !ok {
			continue
		}
		if err := each(peer, author, id); err != nil {
			return nil, false, err
		}
		deleted, err := tx.DeleteMessage(ctx, ConvFor(peer), MessageKey(author, id))
		if err != nil {
			return nil, false, err
		}
		if deleted {
			gone = append(gone, &Message{ID: id, Peer: peer, From: author})
		}
	}
	return gone, changed, nil
}
