package client

// Disappearing messages.
//
// A conversation has a timer (0: off) that either side sets with SetTimer;
// the change travels as a TimerChange content, is recorded in the history
// of every device of both sides, and the newest change (by its author's
// clock) wins. Each text carries the timer it was sent with.
//
// When the timer starts: on every device, when the message is stored there:
// at sending for the sending device, at reception for the recipient's
// devices and the sender's other devices. (Signal starts the recipient's
// timer when the message is read; starting it at reception is simpler,
// deletes sooner, and works the same on a device nobody looks at.)
//
// Each stored disappearing message has an entry in the "expiry" table
// (peer, author, id -> deadline). A janitor goroutine owned by the Client
// (started by Open, Enroll and Link, stopped by Close) deletes due messages
// every Options.ExpiryInterval, and once when the store is opened, so a
// device that was off deletes on its next start. Deleted rows are erased
// (the store runs with secure_delete on) and the write-ahead log is
// checkpointed and truncated, so no copy of the sealed row lingers in the
// -wal file.
//
// An attachment takes the conversation's timer when it is sent or
// received (its pointer carries none). When it expires, its record (the
// pointer with the file key) goes too, and every file Download wrote for
// it (Download records their paths in the store) is removed.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"sotto/client/content"
	"sotto/client/store"
)

const (
	tblExpiry = "expiry"
	tblTimers = "conv-timers"
	// DefaultExpiryInterval is how often the janitor looks for due messages.
	DefaultExpiryInterval = time.Second
)

type timerRecord struct {
	Seconds uint32 `json:"seconds"`
	AtMs    int64  `json:"at_ms"` // its author's clock, for newest-wins
}

// Timer returns the disappearing-messages timer of the conversation with
// user (0: off).
func (c *Client) Timer(ctx context.Context, user string) (time.Duration, error) {
	t, err := loadTimer(ctx, c.db, normalize(user))
	return time.Duration(t.Seconds) * time.Second, err
}

func loadTimer(ctx context.Context, db kv, peer string) (timerRecord, error) {
	var t timerRecord
	b, err := db.Get(ctx, tblTimers, []byte(peer))
	if errors.Is(err, store.ErrNotFound) {
		return t, nil
	}
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("client: timer record: %w", err)
	}
	return t, nil
}

func setTimer(ctx context.Context, db kv, peer string, secs uint32, at time.Time) error {
	t, err := loadTimer(ctx, db, peer)
	if err != nil {
		return err
	}
	if t.AtMs > at.UnixMilli() {
		return nil // a newer change is in force
	}
	b, err := json.Marshal(timerRecord{Seconds: secs, AtMs: at.UnixMilli()})
	if err != nil {
		return fmt.Errorf("client: timer record: %w", err)
	}
	return db.Put(ctx, tblTimers, []byte(peer), b)
}

// SetTimer sets the disappearing-messages timer of the conversation with
// user (0: off) for both sides; it is rounded down to whole seconds.
func (c *Client) SetTimer(ctx context.Context, user string, d time.Duration) error {
	if d < 0 || (d > 0 && d < time.Second) || d > content.MaxTimerSeconds*time.Second {
		return ErrBadTimer
	}
	if err := c.AllowedDisappearing(ctx, d); err != nil {
		return err
	}
	ct, err := content.NewTimerChange(d, c.opts.Now())
	if err != nil {
		return err
	}
	return c.sendAndSync(ctx, normalize(user), ct)
}

// setExpiry starts m's timer on this device.
func (c *Client) setExpiry(m *Message, secs uint32) {
	if secs == 0 {
		return
	}
	m.ExpireSeconds = secs
	m.ExpiresAt = c.opts.Now().Add(time.Duration(secs) * time.Second)
}

func expiryKey(peer, author string, id []byte) []byte {
	return append([]byte(peer+"\x00"+author+"\x00"), id...)
}

func parseExpiryKey(k []byte) (peer, author string, id []byte, ok bool) {
	var parts [2]string
	for i := range parts {
		j := indexByte(k, 0)
		if j < 0 {
			return "", "", nil, false
		}
		parts[i], k = string(k[:j]), k[j+1:]
	}
	return parts[0], parts[1], k, len(k) == content.IDSize
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// scheduleExpiry records when m (written by author) disappears.
func scheduleExpiry(ctx context.Context, db kv, author string, m *Message) error {
	if m.ExpiresAt.IsZero() {
		return nil
	}
	return db.Put(ctx, tblExpiry, expiryKey(m.Peer, author, m.ID), binary.BigEndian.AppendUint64(nil, uint64(m.ExpiresAt.UnixMilli())))
}

// ExpireMessages deletes every message whose disappearing timer ran out,
// from the history and the database files, and reports how many. The
// janitor calls it; tests and tools may too.
func (c *Client) ExpireMessages(ctx context.Context) (int, error) {
	now := c.opts.Now().UnixMilli()
	// A read first, so that a sweep with nothing due takes no write lock.
	pending, err := c.db.List(ctx, tblExpiry)
	if err != nil {
		return 0, err
	}
	if !slices.ContainsFunc(pending, func(e store.Entry) bool { return len(e.Value) == 8 && int64(binary.BigEndian.Uint64(e.Value)) <= now }) {
		return 0, nil
	}
	var gone []*Message
	var files []string // downloaded copies of expired attachments
	changed := false
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		gone, files, changed = nil, nil, false
		entries, err := tx.List(ctx, tblExpiry)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if len(e.Value) != 8 || int64(binary.BigEndian.Uint64(e.Value)) > now {
				continue
			}
			if err := tx.Delete(ctx, tblExpiry, e.Key); err != nil {
				return err
			}
			changed = true
			peer, author, id, ok := parseExpiryKey(e.Key)
			if !ok {
				continue
			}
			f, err := expireAttachment(ctx, tx, peer, author, id)
			if err != nil {
				return err
			}
			files = append(files, f...)
			deleted, err := tx.DeleteMessage(ctx, convFor(peer), messageKey(author, id))
			if err != nil {
				return err
			}
			if deleted {
				gone = append(gone, &Message{ID: id, Peer: peer, From: author})
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	// The records are gone; so go the files they named.
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			c.log.Warn("removing the download of an expired attachment failed", "err", err)
		}
	}
	if !changed {
		return 0, nil
	}
	if err := c.db.Checkpoint(ctx); err != nil {
		// The next sweep or close checkpoints again.
		c.log.Warn("checkpoint after expiry failed", "err", err)
	}
	for _, m := range gone {
		c.emit(Event{Kind: EventExpired, Message: m, User: m.Peer})
	}
	return len(gone), nil
}

// expireAttachment deletes the attachment record (pointer and file key) of
// the expired message id, if it has one, and returns the files Download
// wrote for it.
func expireAttachment(ctx context.Context, tx *store.Tx, peer, author string, id []byte) ([]string, error) {
	b, err := tx.Get(ctx, tblAttachments, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec attachmentRecord
	err = json.Unmarshal(b, &rec)
	clear(b)
	clear(rec.Pointer)
	if err != nil {
		// Unreadable, but it belongs to an expired id: delete it anyway.
		return nil, tx.Delete(ctx, tblAttachments, id)
	}
	if rec.Peer != peer || rec.Author != author {
		return nil, nil // another message's (ids are random: not expected)
	}
	return rec.Files, tx.Delete(ctx, tblAttachments, id)
}

// janitor runs ExpireMessages periodically until stopped.
type janitor struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (c *Client) startJanitor() *janitor {
	ctx, cancel := context.WithCancel(context.Background())
	j := &janitor{cancel: cancel}
	every := c.opts.ExpiryInterval
	if every <= 0 {
		every = DefaultExpiryInterval
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if c.db.Locked() {
					continue // Unlock expires what fell due meanwhile
				}
				if _, err := c.ExpireMessages(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("expiring messages failed", "err", err)
				}
			}
		}
	}()
	return j
}

func (j *janitor) stop() {
	if j == nil {
		return
	}
	j.cancel()
	j.wg.Wait()
}
