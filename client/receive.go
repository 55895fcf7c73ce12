package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sotto/client/content"
	"sotto/client/conversation"
	"sotto/client/store"
	"sotto/wire"
)

// Message is one message of a conversation, as stored in the history
// (client/conversation).
type Message = conversation.Message

// EventKind says what an Event reports.
type EventKind int

// Kinds of events.
const (
	EventMessage         EventKind = iota + 1 // Event.Message is new (incoming, or sent by an own other device)
	EventReceipt                              // Event.Receipt
	EventIdentityChanged                      // Event.User's identity key changed
	EventError                                // Event.Err: an envelope could not be processed
	EventWiped                                // an own device (Event.Device) ordered this one wiped; it was (Event.Err: how it failed)
	EventUpdate                               // Event.Message changed (reaction, edit, delete for everyone)
	EventTyping                               // Event.User started (Event.Typing) or stopped typing
	EventExpired                              // Event.Message (id, peer, author only) disappeared: its timer ran out
	EventCallSignal                           // Event.Call: call signalling (for the call manager)
)

// Receipt reports delivery or read receipts for own messages.
type Receipt struct {
	From       string
	FromDevice uint32
	Read       bool // false: delivery receipt
	IDs        [][]byte
}

// Event is what the client reports to its UI.
type Event struct {
	Kind    EventKind
	Message *Message
	Receipt *Receipt
	User    string
	Device  uint32
	Err     error
	Typing  bool
	Call    *CallSignal
	Notice  *Notice // EventOrgNotice
}

// wipeSelf crypto-shreds the local store on an own device's order. The
// client is unusable afterwards.
func (c *Client) wipeSelf(by uint32) {
	c.cryptoMu.Lock()
	dir := c.db.Dir()
	files := c.downloads(context.Background())
	c.db.Close()
	err := store.Wipe(dir)
	removeDownloads(c.log, files)
	clear(c.acct.DeviceKey)
	clear(c.acct.Identity)
	c.cryptoMu.Unlock()
	c.emit(Event{Kind: EventWiped, User: c.acct.Username, Device: by, Err: err})
}

// registerHandlers registers the handlers of the content kinds this
// file and the features without a registration of their own handle; the
// others register theirs (messaging.go, attachment.go).
func (c *Client) registerHandlers(hs contentHandlers) {
	hs.register(c.applyText, "text")
	hs.register(c.applySyncSent, "sync_sent")
	hs.register(c.applyDeviceOrder, "device_order")
	hs.register(func(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
		return c.applyReceipt(ctx, tx, env, ct.GetDeliveryReceipt().GetIds(), false, r)
	}, "delivery_receipt")
	hs.register(func(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
		return c.applyReceipt(ctx, tx, env, ct.GetReadReceipt().GetIds(), true, r)
	}, "read_receipt")
	hs.register(func(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
		return c.applyCallSignal(ctx, tx, env, ct, ct.GetCallSignal(), r) // calls.go
	}, "call_signal")
	c.registerMessaging(hs)
	c.registerAttachments(hs)
}

// applyText stores a contact's text message.
func (c *Client) applyText(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
	if env.Sender == c.acct.Username {
		return nil // own devices talk through sync transcripts
	}
	t := ct.GetText()
	m := &Message{ID: ct.Id, Peer: env.Sender, From: env.Sender, FromDevice: env.SenderDevice,
		SentAt: time.UnixMilli(ct.SentAtMs), ServerTime: time.UnixMilli(env.ServerTimestampMs), Text: t.Body}
	if t.Quote != nil {
		m.QuoteID = t.Quote.Id
	}
	id, err := loadIdentity(ctx, tx, env.Sender)
	if err != nil {
		return err
	}
	m.Unverified = id != nil && id.Changed
	c.setExpiry(m, t.ExpireSeconds)
	added, err := appendMessage(ctx, tx, env.Sender, m)
	if err != nil || !added {
		return err
	}
	if err := scheduleExpiry(ctx, tx, env.Sender, m); err != nil {
		return err
	}
	r.msg, r.ackTo = m, env.Sender
	return nil
}

// applySyncSent applies an own device's transcript of what it sent.
func (c *Client) applySyncSent(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
	self := c.acct.Username
	if env.Sender != self {
		return nil // only own devices may write transcripts
	}
	ss := ct.GetSyncSent()
	inner := ss.Content
	if _, ok := inner.Body.(*content.Content_Attachment); ok {
		return c.applySyncAttachment(ctx, tx, env, inner, ss.Destination, r)
	}
	t, ok := inner.Body.(*content.Content_Text)
	if !ok {
		return c.applyMessaging(ctx, tx, env, inner, ss.Destination, r)
	}
	m := &Message{ID: inner.Id, Peer: ss.Destination, From: self, FromDevice: env.SenderDevice, Outgoing: true, Synced: true,
		SentAt: time.UnixMilli(inner.SentAtMs), ServerTime: time.UnixMilli(env.ServerTimestampMs), Text: t.Text.Body}
	if t.Text.Quote != nil {
		m.QuoteID = t.Text.Quote.Id
	}
	c.setExpiry(m, t.Text.ExpireSeconds)
	added, err := appendMessage(ctx, tx, self, m)
	if err != nil || !added {
		return err
	}
	if err := scheduleExpiry(ctx, tx, self, m); err != nil {
		return err
	}
	r.msg = m
	return nil
}

// applyDeviceOrder notes an own device's order; it is carried out after
// commit (afterCommit).
func (c *Client) applyDeviceOrder(_ context.Context, _ *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
	o := ct.GetDeviceOrder()
	// Only the account's own devices give orders; the session has
	// authenticated the sender's identity as this account's.
	if env.Sender != c.acct.Username || env.SenderDevice == c.acct.DeviceID {
		return nil
	}
	switch o.Action {
	case content.DeviceOrder_WIPE:
		if o.DeviceId == c.acct.DeviceID && (o.ExpiresMs == 0 || c.opts.Now().UnixMilli() < o.ExpiresMs) {
			r.wipeBy = env.SenderDevice
		}
	case content.DeviceOrder_HISTORY_IMPORTED:
		r.historyBlob = o.BlobId
	case content.DeviceOrder_FOREIGN_KEY_ALARM:
		r.foreignAlarm = o
	case content.DeviceOrder_PROFILE_KEY_STATE:
		// Its state rode in the Content and was merged already
		// (learnProfileKey).
	default:
		// From a newer client: forward compatible, not an error.
		c.log.Info("device order of an unknown action ignored", "action", int32(o.Action), "from", env.Sender)
	}
	return nil
}

func (c *Client) applyReceipt(ctx context.Context, tx *store.Tx, env *wire.Envelope, ids [][]byte, read bool, r *received) error {
	self := c.acct.Username
	for _, id := range ids {
		b, err := tx.Message(ctx, convFor(env.Sender), messageKey(self, id))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("client: message record: %w", err)
		}
		m.Delivered = true
		m.Read = m.Read || (read && c.showReadReceipts(ctx, tx))
		if err := putMessage(ctx, tx, self, &m); err != nil {
			return err
		}
	}
	r.receipt = &Receipt{From: env.Sender, FromDevice: env.SenderDevice, Read: read, IDs: ids}
	return nil
}

// appendMessage stores m in its conversation unless already there. author
// is who chose the message id.
func appendMessage(ctx context.Context, db kv, author string, m *Message) (bool, error) {
	return conversation.Append(ctx, db, author, m)
}

func putMessage(ctx context.Context, db kv, author string, m *Message) error {
	return conversation.Put(ctx, db, author, m)
}

// History returns the last limit messages exchanged with user (all when
// limit <= 0), oldest first.
func (c *Client) History(ctx context.Context, user string, limit int) ([]*Message, error) {
	return conversation.History(ctx, c.db, normalize(user), limit)
}
