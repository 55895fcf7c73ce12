package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"sotto/client/content"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/session"
	"sotto/wire"
)

// Message is one message of a conversation, as stored in the history.
type Message struct {
	ID         []byte    `json:"id"`
	Peer       string    `json:"peer"` // the other party of the conversation
	From       string    `json:"from"`
	FromDevice uint32    `json:"from_device"`
	Outgoing   bool      `json:"outgoing,omitempty"`
	SentAt     time.Time `json:"sent_at"`     // the sender's clock
	ServerTime time.Time `json:"server_time"` // when the relay accepted it
	Text       string    `json:"text"`
	QuoteID    []byte    `json:"quote_id,omitempty"`
	Delivered  bool      `json:"delivered,omitempty"` // outgoing: a delivery receipt came back
	Read       bool      `json:"read,omitempty"`
	// Synced marks an outgoing message sent from another own device.
	Synced bool `json:"synced,omitempty"`
	// Unverified marks an incoming message that arrived while the
	// sender's identity key had changed and was not yet accepted: it may
	// come from someone else (for instance a relay impersonating them).
	Unverified bool `json:"unverified,omitempty"`
	// Attachment is set on a file (attachment.go); Text is its caption.
	Attachment *Attachment `json:"attachment,omitempty"`

	// Messaging features (messaging.go, disappear.go).
	Kind         string     `json:"kind,omitempty"`          // "" a text; KindTimer a timer change
	TimerSeconds uint32     `json:"timer_seconds,omitempty"` // KindTimer: the new timer (0: off)
	Reactions    []Reaction `json:"reactions,omitempty"`     // one per user
	Versions     []Version  `json:"versions,omitempty"`      // every version, oldest first, once edited
	Deleted      bool       `json:"deleted,omitempty"`       // deleted for everyone by its author
	// ExpireSeconds is the disappearing timer the message was sent with;
	// ExpiresAt when this device deletes it (zero: never).
	ExpireSeconds uint32    `json:"expire_seconds,omitempty"`
	ExpiresAt     time.Time `json:"expires_at,omitzero"`
	// Call is set on call records (missed, rejected, answered...).
	Call *CallRecord `json:"call,omitempty"`
}

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

// quietPeriod is how long the receive loop waits, once the relay says the
// backlog was pushed, before it reports itself idle: the pushed envelopes
// are already in memory, this only lets them reach the loop.
const quietPeriod = 300 * time.Millisecond

func (c *Client) receiveLoop(ctx context.Context, conn *transport.Conn, noAck bool, idle chan struct{}) {
	drained := conn.Drained()
	var quiet <-chan time.Time
	idleClosed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-drained:
			drained, quiet = nil, time.After(quietPeriod)
		case <-quiet:
			quiet = nil
			if !idleClosed {
				close(idle)
				idleClosed = true
			}
		case env, ok := <-conn.Envelopes():
			if !ok {
				return
			}
			if stop := c.handleEnvelope(ctx, conn, env, noAck); stop {
				return
			}
			if drained == nil && !idleClosed {
				quiet = time.After(quietPeriod)
			}
		}
	}
}

// received is what processing one envelope produced, acted on after commit.
type received struct {
	msg      *Message
	receipt  *Receipt
	badBody  error
	ackTo    string // send a delivery receipt to this user
	changed  []string
	isPreKey bool
	wipeBy   uint32 // an own device ordered this one wiped
	call     *CallSignal
	events   []Event // more events to emit after commit (messaging.go)

	historyBlob []byte // an own device imported this history blob (history.go)
	// foreignAlarm is an own device's report of a foreign-key alarm
	// (ownalarm.go).
	foreignAlarm *content.DeviceOrder
	// uploadedBlob is a blob this device uploaded whose message an own
	// device deleted for everyone (messaging.go).
	uploadedBlob *blobRef
	// keyState: an own device's profile key state was merged; rotated:
	// this device made a new key the siblings must learn (revokesync.go).
	keyState, keyStateRotated bool
	// sealedRevoked: a sealed message came from this revoked contact.
	sealedRevoked string
}

// handleEnvelope processes one envelope; it reports whether the receive
// loop must stop (the device was wiped).
func (c *Client) handleEnvelope(ctx context.Context, conn *transport.Conn, env *wire.Envelope, noAck bool) (stop bool) {
	if env.Type == uint32(wire.EnvelopeType_ORG_DOCUMENT) {
		return c.handleOrgEnvelope(ctx, conn, env, noAck)
	}
	orig := env
	var addr session.Address
	var r received
	first := &firstContact{}
	process := func() error {
		env = orig
		addr = session.Address{Name: env.Sender, DeviceID: env.SenderDevice}
		c.cryptoMu.Lock()
		defer c.cryptoMu.Unlock()
		return c.db.Update(ctx, func(tx *store.Tx) error {
			return c.receiveTx(ctx, tx, first, &env, &addr, &r)
		})
	}
	err := process()
	var lookup *needLookupError
	var refusedFrom string
	if errors.As(err, &lookup) {
		// A first message from lookup.user, or a changed key of theirs:
		// the key is checked against the key log outside the (rolled
		// back) transaction, then the envelope is processed again.
		if err = c.checkLookup(ctx, conn, lookup); err == nil {
			first.allow(lookup)
			if err = process(); errors.As(err, new(*needLookupError)) {
				err = fmt.Errorf("client: the message from %s named another identity key on a second reading", lookup.user)
			}
		} else if errors.Is(err, ErrSenderNotInLog) {
			refusedFrom = lookup.user
		}
		c.flushAlarms(ctx)
	}

	switch {
	case err == nil:
	case errors.Is(err, ErrSenderNotInLog):
		// A first message, or a known contact's under a changed key, with
		// an identity key that the log does not hold for its sender (a
		// relay impersonating them): dropped with the alarm, nothing of
		// it stored or shown, the old key kept.
		c.log.Warn("message refused: its identity key is not in the key log", "from", refusedFrom, "err", err)
		r = received{}
		c.emit(Event{Kind: EventError, User: refusedFrom, Err: err})
	case errors.Is(err, session.ErrDuplicateMessage):
		// A redelivery of something already processed and stored.
		c.log.Debug("duplicate envelope", "from", addr.String())
	case errors.As(err, new(*SealedSenderError)):
		// Refused (forged sender, bad certificate, not for us): dropped,
		// nothing shown but the error.
		c.log.Warn("sealed envelope refused", "err", err)
		c.emit(Event{Kind: EventError, Err: err})
	case errors.Is(err, session.ErrInvalidMessage), errors.Is(err, session.ErrNoSession),
		errors.Is(err, session.ErrUntrustedIdentity), errors.Is(err, session.ErrInvalidKeyID),
		errors.Is(err, session.ErrBadSignature), errors.Is(err, session.ErrInvalidRecord):
		// It will never decrypt: drop it rather than loop on it.
		c.log.Warn("undecryptable envelope dropped", "from", addr.String(), "err", err)
		c.emit(Event{Kind: EventError, User: env.Sender, Err: fmt.Errorf("client: message from %s could not be decrypted: %w", addr, err)})
	default:
		// Not stored (store or context failure): leave it queued. A
		// disconnect (or the idle lock) under way is no failure.
		if ctx.Err() == nil {
			c.log.Warn("envelope not processed; left queued", "from", addr.String(), "err", err)
		}
		return false
	}
	if !noAck {
		// Queued: the connection acks in batches and retries a refused
		// Ack. Unacknowledged (the connection is closing), it is
		// delivered again and recognized as a duplicate.
		conn.AckLater(env.Id)
	}
	// After the ack: a consistency proof round trip never holds it up.
	c.keylog.CheckGossip(ctx, conn)
	for _, u := range r.changed {
		c.emit(Event{Kind: EventIdentityChanged, User: u})
	}
	if r.badBody != nil {
		c.emit(Event{Kind: EventError, User: env.Sender, Err: r.badBody})
	}
	if r.msg != nil {
		c.emit(Event{Kind: EventMessage, Message: r.msg})
	}
	if r.receipt != nil {
		c.emit(Event{Kind: EventReceipt, Receipt: r.receipt})
	}
	if r.call != nil {
		c.emit(Event{Kind: EventCallSignal, User: env.Sender, Device: env.SenderDevice, Call: r.call})
	}
	for _, ev := range r.events {
		c.emit(ev)
	}
	if r.ackTo != "" && r.msg != nil {
		c.queueReceipt(r.ackTo, false, r.msg.ID)
	}
	if r.wipeBy != 0 {
		c.wipeSelf(r.wipeBy)
		return true
	}
	if r.historyBlob != nil {
		c.deleteHistoryBlob(ctx, r.historyBlob)
	}
	if r.foreignAlarm != nil {
		c.noteSiblingAlarm(ctx, env.SenderDevice, r.foreignAlarm)
	}
	if r.uploadedBlob != nil {
		c.deleteBlob(ctx, r.uploadedBlob)
	}
	if r.keyState {
		c.keyStateChanged(ctx, conn, r.keyStateRotated)
	}
	if r.sealedRevoked != "" {
		c.sealedFromRevoked(ctx, conn, r.sealedRevoked)
	}
	if r.isPreKey {
		// Cut short by a disconnect, it is done again on the next Connect.
		if err := c.replenishPreKeys(ctx, conn); err != nil && ctx.Err() == nil {
			c.log.Warn("prekey replenish failed", "err", err)
		}
	}
	return false
}

// receiveTx decrypts *env inside the receive transaction tx and applies its
// content to r. A sealed envelope is replaced (*env, *addr) by the opened
// one, which names its sender. first checks the first identity key of a
// sender against the key log (transparency_first.go).
func (c *Client) receiveTx(ctx context.Context, tx *store.Tx, first *firstContact, envp **wire.Envelope, addr *session.Address, r *received) error {
	env := *envp
	*r = received{isPreKey: env.Type == session.MessageTypePreKey}
	ss := c.sigStores(tx)
	ss.first = first
	var pt []byte
	var err error
	sealedIn := env.Type == wire.EnvelopeTypeSealed
	if sealedIn {
		opened, plain, inner, err := c.openSealed(ctx, ss, env)
		if err != nil {
			return err
		}
		env, pt = opened, plain
		*envp, *addr = env, session.Address{Name: env.Sender, DeviceID: env.SenderDevice}
		r.isPreKey = inner == session.MessageTypePreKey
	} else if pt, err = session.Decrypt(ctx, rand.Reader, ss.stores(), *addr, int(env.Type), env.Content); err != nil {
		return err
	}
	if err := first.vetChanged(ctx, tx, ss.changed); err != nil {
		return err // a changed key not yet proven in the key log
	}
	r.changed = ss.changed
	if err := rememberDevice(ctx, tx, env.Sender, env.SenderDevice, c.acct); err != nil {
		return err
	}
	ct, err := content.Decode(pt)
	if err != nil {
		// The session advanced: commit that, drop the body.
		r.badBody = err
		return nil
	}
	if sealedIn {
		if revoked, err := isRevoked(ctx, tx, env.Sender); err != nil {
			return err
		} else if revoked {
			r.sealedRevoked = env.Sender
		}
	}
	if err := c.learnProfileKey(ctx, tx, env.Sender, ct, r); err != nil {
		return err
	}
	c.keylog.NoteGossip(env.Sender, ct.GetTransparencyHead())
	return c.applyContent(ctx, tx, env, ct, r)
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

func (c *Client) applyContent(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
	self := c.acct.Username
	fromSelf := env.Sender == self
	switch b := ct.Body.(type) {
	case *content.Content_Text:
		if fromSelf {
			return nil // own devices talk through sync transcripts
		}
		m := &Message{ID: ct.Id, Peer: env.Sender, From: env.Sender, FromDevice: env.SenderDevice,
			SentAt: time.UnixMilli(ct.SentAtMs), ServerTime: time.UnixMilli(env.ServerTimestampMs), Text: b.Text.Body}
		if b.Text.Quote != nil {
			m.QuoteID = b.Text.Quote.Id
		}
		id, err := loadIdentity(ctx, tx, env.Sender)
		if err != nil {
			return err
		}
		m.Unverified = id != nil && id.Changed
		c.setExpiry(m, b.Text.ExpireSeconds)
		added, err := appendMessage(ctx, tx, env.Sender, m)
		if err != nil || !added {
			return err
		}
		if err := scheduleExpiry(ctx, tx, env.Sender, m); err != nil {
			return err
		}
		r.msg, r.ackTo = m, env.Sender
	case *content.Content_SyncSent:
		if !fromSelf {
			return nil // only own devices may write transcripts
		}
		inner := b.SyncSent.Content
		if _, ok := inner.Body.(*content.Content_Attachment); ok {
			return c.applySyncAttachment(ctx, tx, env, inner, b.SyncSent.Destination, r)
		}
		t, ok := inner.Body.(*content.Content_Text)
		if !ok {
			return c.applyMessaging(ctx, tx, env, inner, b.SyncSent.Destination, r)
		}
		m := &Message{ID: inner.Id, Peer: b.SyncSent.Destination, From: self, FromDevice: env.SenderDevice, Outgoing: true, Synced: true,
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
	case *content.Content_DeviceOrder:
		// Only the account's own devices give orders; the session has
		// authenticated the sender's identity as this account's.
		if fromSelf && env.SenderDevice != c.acct.DeviceID &&
			b.DeviceOrder.Action == content.DeviceOrder_WIPE && b.DeviceOrder.DeviceId == c.acct.DeviceID &&
			(b.DeviceOrder.ExpiresMs == 0 || c.opts.Now().UnixMilli() < b.DeviceOrder.ExpiresMs) {
			r.wipeBy = env.SenderDevice
		}
		if fromSelf && env.SenderDevice != c.acct.DeviceID && b.DeviceOrder.Action == content.DeviceOrder_HISTORY_IMPORTED {
			r.historyBlob = b.DeviceOrder.BlobId
		}
		if fromSelf && env.SenderDevice != c.acct.DeviceID && b.DeviceOrder.Action == content.DeviceOrder_FOREIGN_KEY_ALARM {
			r.foreignAlarm = b.DeviceOrder
		}
		// PROFILE_KEY_STATE: its state rode in the Content and was
		// merged already (learnProfileKey).
		if a := b.DeviceOrder.Action; a != content.DeviceOrder_WIPE && a != content.DeviceOrder_HISTORY_IMPORTED &&
			a != content.DeviceOrder_FOREIGN_KEY_ALARM && a != content.DeviceOrder_PROFILE_KEY_STATE {
			// From a newer client: forward compatible, not an error.
			c.log.Info("device order of an unknown action ignored", "action", int32(a), "from", env.Sender)
		}
	case *content.Content_Reaction, *content.Content_Edit, *content.Content_Delete, *content.Content_Typing, *content.Content_TimerChange:
		if fromSelf {
			return nil // own devices talk through sync transcripts
		}
		return c.applyMessaging(ctx, tx, env, ct, env.Sender, r)
	case *content.Content_CallSignal:
		return c.applyCallSignal(ctx, tx, env, ct, b.CallSignal, r)
	case *content.Content_Attachment:
		if fromSelf {
			return nil // own devices talk through sync transcripts
		}
		return c.applyIncomingAttachment(ctx, tx, env, ct, r)
	case *content.Content_DeliveryReceipt:
		return c.applyReceipt(ctx, tx, env, b.DeliveryReceipt.Ids, false, r)
	case *content.Content_ReadReceipt:
		return c.applyReceipt(ctx, tx, env, b.ReadReceipt.Ids, true, r)
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
	b, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("client: message record: %w", err)
	}
	return db.AppendMessage(ctx, convFor(m.Peer), messageKey(author, m.ID), b)
}

func putMessage(ctx context.Context, db kv, author string, m *Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("client: message record: %w", err)
	}
	return db.UpdateMessage(ctx, convFor(m.Peer), messageKey(author, m.ID), b)
}

// History returns the last limit messages exchanged with user (all when
// limit <= 0), oldest first.
func (c *Client) History(ctx context.Context, user string, limit int) ([]*Message, error) {
	rows, err := c.db.Messages(ctx, convFor(normalize(user)), limit)
	if err != nil {
		return nil, err
	}
	out := make([]*Message, 0, len(rows))
	for _, b := range rows {
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("client: message record: %w", err)
		}
		out = append(out, &m)
	}
	return out, nil
}

// Device cache: the device ids believed to exist for a user (for the own
// account: the other devices).
func loadDevices(ctx context.Context, db kv, user string) ([]uint32, bool, error) {
	b, err := db.Get(ctx, tblDevices, []byte(user))
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var ids []uint32
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, false, fmt.Errorf("client: device list: %w", err)
	}
	return ids, true, nil
}

func saveDevices(ctx context.Context, db kv, user string, ids []uint32) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	b, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("client: device list: %w", err)
	}
	return db.Put(ctx, tblDevices, []byte(user), b)
}

// rememberDevice adds a device a message came from to the sender's list.
func rememberDevice(ctx context.Context, db kv, user string, id uint32, self *account) error {
	if user == self.Username && id == self.DeviceID {
		return nil
	}
	ids, known, err := loadDevices(ctx, db, user)
	if err != nil || !known || slices.Contains(ids, id) {
		// An unknown list is fetched from the relay on the next send.
		return err
	}
	return saveDevices(ctx, db, user, append(ids, id))
}
