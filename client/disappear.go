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
// (peer, author, id -> deadline; the rules and the sweep are in
// client/conversation/timers.go). A janitor goroutine owned by the Client
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
	"encoding/json"
	"errors"
	"os"
	"sync"
	"time"

	"sotto/client/content"
	"sotto/client/conversation"
	"sotto/client/store"
)

// DefaultExpiryInterval is how often the janitor looks for due messages.
const DefaultExpiryInterval = time.Second

// Timer returns the disappearing-messages timer of the conversation with
// user (0: off).
func (c *Client) Timer(ctx context.Context, user string) (time.Duration, error) {
	t, err := loadTimer(ctx, c.db, normalize(user))
	return time.Duration(t.Seconds) * time.Second, err
}

func loadTimer(ctx context.Context, db kv, peer string) (conversation.TimerRecord, error) {
	return conversation.LoadTimer(ctx, db, peer)
}

func setTimer(ctx context.Context, db kv, peer string, secs uint32, at time.Time) error {
	return conversation.SetTimer(ctx, db, peer, secs, at)
}

// SetTimer sets the disappearing-messages timer of the conversation with
// user (0: off) for both sides; it is rounded down to whole seconds.
func (c *Client) SetTimer(ctx context.Context, user string, d time.Duration) error {
	if err := conversation.CheckTimer(d); err != nil {
		return err
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
func (c *Client) setExpiry(m *Message, secs uint32) { conversation.SetExpiry(m, secs, c.opts.Now()) }

// scheduleExpiry records when m (written by author) disappears.
func scheduleExpiry(ctx context.Context, db kv, author string, m *Message) error {
	return conversation.ScheduleExpiry(ctx, db, author, m)
}

// ExpireMessages deletes every message whose disappearing timer ran out,
// from the history and the database files, and reports how many. The
// janitor calls it; tests and tools may too.
func (c *Client) ExpireMessages(ctx context.Context) (int, error) {
	now := c.opts.Now()
	// A read first, so that a sweep with nothing due takes no write lock.
	if due, err := conversation.AnyDue(ctx, c.db, now); err != nil || !due {
		return 0, err
	}
	var gone []*Message
	var files []string // downloaded copies of expired attachments
	changed := false
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		files = nil
		var err error
		gone, changed, err = conversation.Expire(ctx, tx, now, func(peer, author string, id []byte) error {
			f, err := expireAttachment(ctx, tx, peer, author, id)
			files = append(files, f...)
			return err
		})
		return err
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
