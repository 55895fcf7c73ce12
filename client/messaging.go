package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"sotto/client/content"
	"sotto/client/conversation"
	"sotto/client/store"
	"sotto/wire"
)

// KindTimer marks a history entry that records a change of the
// conversation's disappearing-messages timer.
const KindTimer = conversation.KindTimer

// DeleteWindow is how long after sending its author may delete a message
// for everyone (conversation.DeleteWindow).
const DeleteWindow = conversation.DeleteWindow

// Errors of the messaging features (client/conversation).
var (
	ErrNoMessage = conversation.ErrNoMessage
	ErrNotAuthor = conversation.ErrNotAuthor
	ErrTooLate   = conversation.ErrTooLate
	ErrIsDeleted = conversation.ErrIsDeleted
	ErrBadTimer  = conversation.ErrBadTimer
)

// Reaction is one user's reaction to a message.
type Reaction = conversation.Reaction

// Version is one version of an edited message.
type Version = conversation.Version

// sendAndSync sends ct to peer's devices and a transcript of it to the own
// account's other devices, then applies it to the local history as the own
// devices will.
func (c *Client) sendAndSync(ctx context.Context, peer string, ct *content.Content) error {
	ts, err := c.sendContent(ctx, peer, ct, ct.Id)
	if err != nil {
		return err
	}
	relayID, err := content.NewID(rand.Reader)
	if err != nil {
		return err
	}
	if _, err := c.sendContent(ctx, c.acct.Username, content.NewSyncSent(peer, ct), relayID); err != nil && !errors.Is(err, ErrNoDevices) {
		c.log.Warn("sync transcript to own devices failed", "err", err)
	}
	if _, ok := ct.Body.(*content.Content_Typing); ok {
		return nil
	}
	env := &wire.Envelope{Sender: c.acct.Username, SenderDevice: c.acct.DeviceID, ServerTimestampMs: ts}
	var r received
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		r = received{}
		return c.applyMessaging(ctx, tx, env, ct, peer, &r)
	})
	if err != nil {
		return fmt.Errorf("client: sent but not stored: %w", err)
	}
	if r.msg != nil {
		c.emit(Event{Kind: EventMessage, Message: r.msg})
	}
	for _, ev := range r.events {
		c.emit(ev)
	}
	return nil
}

// SendText sends text to user, as a reply to the message quoteID of the
// conversation when quoteID is not nil, with the conversation's
// disappearing-messages timer. It returns the stored message.
func (c *Client) SendText(ctx context.Context, user, text string, quoteID []byte) (*Message, error) {
	user = normalize(user)
	if user == "" || user == c.acct.Username {
		return nil, fmt.Errorf("client: cannot send to %q", user)
	}
	var quote *content.Quote
	if quoteID != nil {
		q, err := c.FindMessage(ctx, user, quoteID)
		if err != nil {
			return nil, err
		}
		quote = &content.Quote{Id: q.ID, Author: q.From, Text: excerpt(q.Text, 100)}
	}
	timer, err := c.Timer(ctx, user)
	if err != nil {
		return nil, err
	}
	ct, err := content.NewText(text, quote, c.opts.Now())
	if err != nil {
		return nil, err
	}
	ct.GetText().ExpireSeconds = uint32(timer / time.Second)
	ts, err := c.sendContent(ctx, user, ct, ct.Id)
	if err != nil {
		return nil, err
	}
	m := &Message{ID: ct.Id, Peer: user, From: c.acct.Username, FromDevice: c.acct.DeviceID, Outgoing: true,
		SentAt: time.UnixMilli(ct.SentAtMs), ServerTime: time.UnixMilli(ts), Text: text}
	if quote != nil {
		m.QuoteID = quote.Id
	}
	c.setExpiry(m, ct.GetText().ExpireSeconds)
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		if _, err := appendMessage(ctx, tx, c.acct.Username, m); err != nil {
			return err
		}
		return scheduleExpiry(ctx, tx, c.acct.Username, m)
	})
	if err != nil {
		return m, fmt.Errorf("client: message sent but not stored: %w", err)
	}
	relayID, err := content.NewID(rand.Reader)
	if err != nil {
		return m, err
	}
	if _, err := c.sendContent(ctx, c.acct.Username, content.NewSyncSent(user, ct), relayID); err != nil && !errors.Is(err, ErrNoDevices) {
		c.log.Warn("sync transcript to own devices failed", "err", err)
	}
	return m, nil
}

func excerpt(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// FindMessage returns the message id of the conversation with user,
// whoever wrote it.
func (c *Client) FindMessage(ctx context.Context, user string, id []byte) (*Message, error) {
	user = normalize(user)
	for _, author := range []string{user, c.acct.Username} {
		m, err := loadMessage(ctx, c.db, user, author, id)
		if errors.Is(err, ErrNoMessage) {
			continue
		}
		return m, err
	}
	return nil, ErrNoMessage
}

func loadMessage(ctx context.Context, db kv, peer, author string, id []byte) (*Message, error) {
	return conversation.Load(ctx, db, peer, author, id)
}

// React sets the own reaction to message id of the conversation with user
// (an empty emoji withdraws it).
func (c *Client) React(ctx context.Context, user string, id []byte, emoji string) error {
	user = normalize(user)
	m, err := c.FindMessage(ctx, user, id)
	if err != nil {
		return err
	}
	if m.Deleted {
		return ErrIsDeleted
	}
	remove := emoji == ""
	if remove {
		for _, r := range m.Reactions {
			if r.From == c.acct.Username {
				emoji = r.Emoji
			}
		}
		if emoji == "" {
			return nil
		}
	}
	ct, err := content.NewReaction(m.From, m.ID, emoji, remove, c.opts.Now())
	if err != nil {
		return err
	}
	return c.sendAndSync(ctx, user, ct)
}

// Edit replaces the text of the own message id sent to user; every device
// of both sides keeps the earlier versions.
func (c *Client) Edit(ctx context.Context, user string, id []byte, text string) error {
	user = normalize(user)
	m, err := c.ownMessage(ctx, user, id)
	if err != nil {
		return err
	}
	if m.Text == text {
		return nil
	}
	ct, err := content.NewEdit(m.ID, text, c.opts.Now())
	if err != nil {
		return err
	}
	return c.sendAndSync(ctx, user, ct)
}

// DeleteForEveryone deletes the own message id sent to user on every device
// of both sides; allowed within DeleteWindow of sending.
func (c *Client) DeleteForEveryone(ctx context.Context, user string, id []byte) error {
	user = normalize(user)
	m, err := c.ownMessage(ctx, user, id)
	if err != nil {
		return err
	}
	if c.opts.Now().Sub(m.ServerTime) > DeleteWindow {
		return ErrTooLate
	}
	ct, err := content.NewDelete(m.ID, c.opts.Now())
	if err != nil {
		return err
	}
	blob := uploadedBlob(ctx, c.db, m)
	if err := c.sendAndSync(ctx, user, ct); err != nil {
		return err
	}
	if blob != nil {
		c.deleteBlob(ctx, blob)
	}
	return nil
}

func (c *Client) ownMessage(ctx context.Context, user string, id []byte) (*Message, error) {
	m, err := loadMessage(ctx, c.db, user, c.acct.Username, id)
	if errors.Is(err, ErrNoMessage) {
		if _, err := c.FindMessage(ctx, user, id); err == nil {
			return nil, ErrNotAuthor
		}
	}
	if err != nil {
		return nil, err
	}
	if m.Deleted {
		return nil, ErrIsDeleted
	}
	if m.Kind != "" {
		return nil, ErrNotAuthor
	}
	return m, nil
}

// SendTyping tells user that this device started or stopped typing; it
// sends nothing unless typing indicators are on (Settings).
func (c *Client) SendTyping(ctx context.Context, user string, started bool) error {
	s, err := c.Settings(ctx)
	if err != nil || !s.Typing {
		return err
	}
	ct, err := content.NewTyping(started, c.opts.Now())
	if err != nil {
		return err
	}
	_, err = c.sendContent(ctx, normalize(user), ct, ct.Id)
	return err
}

// registerMessaging registers the handlers of a contact's reactions,
// edits, deletes, typing notices and timer changes (an own device's come
// as sync transcripts).
func (c *Client) registerMessaging(hs contentHandlers) {
	hs.register(func(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
		if env.Sender == c.acct.Username {
			return nil // own devices talk through sync transcripts
		}
		return c.applyMessaging(ctx, tx, env, ct, env.Sender, r)
	}, "reaction", "edit", "delete", "typing", "timer_change")
}

// applyMessaging applies a reaction, edit, delete, typing notice or timer
// change written by env.Sender in the conversation with peer. Each is
// idempotent, so a redelivery changes nothing and reports nothing.
func (c *Client) applyMessaging(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, peer string, r *received) error {
	author := env.Sender
	self := c.acct.Username
	sentAt := time.UnixMilli(ct.SentAtMs)
	update := func(m *Message, owner string) error {
		if err := putMessage(ctx, tx, owner, m); err != nil {
			return err
		}
		r.events = append(r.events, Event{Kind: EventUpdate, Message: m, User: author})
		return nil
	}
	switch b := ct.Body.(type) {
	case *content.Content_Reaction:
		ta := b.Reaction.TargetAuthor
		if ta != self && ta != peer {
			return nil
		}
		m, err := loadMessage(ctx, tx, peer, ta, b.Reaction.TargetId)
		if errors.Is(err, ErrNoMessage) {
			c.log.Info("reaction to an unknown message dropped", "from", author)
			return nil
		}
		if err != nil || m.Deleted {
			return err
		}
		if !m.React(author, b.Reaction.Emoji, b.Reaction.Remove, sentAt) {
			return nil
		}
		return update(m, ta)
	case *content.Content_Edit:
		m, err := loadMessage(ctx, tx, peer, author, b.Edit.TargetId)
		if errors.Is(err, ErrNoMessage) {
			c.log.Info("edit of an unknown message dropped", "from", author)
			return nil
		}
		if err != nil || !m.Edit(ct.Id, b.Edit.Text, sentAt) {
			return err
		}
		return update(m, author)
	case *content.Content_Delete:
		m, err := loadMessage(ctx, tx, peer, author, b.Delete.TargetId)
		if errors.Is(err, ErrNoMessage) {
			return nil
		}
		if err != nil || m.Deleted {
			return err
		}
		if !m.InDeleteWindow(time.UnixMilli(env.ServerTimestampMs)) {
			c.log.Info("late delete for everyone refused", "from", author)
			return nil
		}
		m.Delete()
		if m.Attachment != nil {
			blob, err := c.dropAttachment(ctx, tx, peer, author, m)
			if err != nil {
				return err
			}
			// Deleted from another own device: the uploader takes the
			// file down (handleEnvelope, after commit).
			r.uploadedBlob = blob
		}
		return update(m, author)
	case *content.Content_Typing:
		if author == self {
			return nil
		}
		if s, err := loadSettings(ctx, tx); err != nil || !s.Typing {
			return err
		}
		r.events = append(r.events, Event{Kind: EventTyping, User: author, Typing: b.Typing.Started})
	case *content.Content_ReadReceipt:
		// From an own device's sync transcript: it showed these.
		if author != self {
			return nil
		}
		for _, id := range b.ReadReceipt.Ids {
			m, err := loadMessage(ctx, tx, peer, peer, id)
			if errors.Is(err, ErrNoMessage) {
				continue
			}
			if err != nil {
				return err
			}
			if m.Read {
				continue
			}
			m.Read = true
			if err := update(m, peer); err != nil {
				return err
			}
		}
	case *content.Content_TimerChange:
		// A timer outside the org policy's range is clamped into it
		// (see clampTimer), and recorded as clamped.
		b.TimerChange.Seconds = clampTimer(ctx, tx, b.TimerChange.Seconds)
		m := &Message{ID: ct.Id, Peer: peer, From: author, FromDevice: env.SenderDevice, Outgoing: author == self, Synced: author == self && env.SenderDevice != c.acct.DeviceID,
			SentAt: sentAt, ServerTime: time.UnixMilli(env.ServerTimestampMs), Kind: KindTimer, TimerSeconds: b.TimerChange.Seconds}
		added, err := appendMessage(ctx, tx, author, m)
		if err != nil || !added {
			return err
		}
		if err := setTimer(ctx, tx, peer, b.TimerChange.Seconds, sentAt); err != nil {
			return err
		}
		r.msg = m
	}
	return nil
}
