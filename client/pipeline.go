package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"sotto/client/content"
	"sotto/client/keylog"
	"sotto/client/sealedsender"
	"sotto/client/sessions"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/wire"
)

// The receive pipeline. Every envelope the relay pushes goes through the
// same steps, each in one place:
//
//  1. open (openEnvelope): a sealed envelope's outer layer is opened and
//     its sender certificate validated; a PreKey message's identity key is
//     read. Nothing is decrypted with a session and nothing is stored.
//  2. vet (vetSender): the identity key the message names, when it is a new
//     contact's or a known contact's changed key, is checked against the
//     key transparency log, with the relay, before any transaction.
//  3. decrypt, decode, handle, commit (commitEnvelope): one store
//     transaction under the crypto lock decrypts the message (once), decodes
//     its content and hands it to the handler registered for its kind
//     (contentHandlers), which stores what it means and says what to report.
//  4. ack: the relay may delete the envelope.
//  5. events and after-commit work (afterCommit): events to the UI,
//     delivery receipts, blob deletions, prekey refills.
//
// A process that dies between 3 and 4 gets the envelope again and finds it
// a duplicate (session.ErrDuplicateMessage): it is acknowledged and nothing
// is shown twice. One that dies before 3 committed stored nothing: the
// envelope is processed again as new.

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
	// this device made a new key the siblings must learn (sealedsender.Learned).
	keyState, keyStateRotated bool
	// sealedRevoked: a sealed message came from this revoked contact.
	sealedRevoked string
}

// inbound is one envelope on its way through the pipeline.
type inbound struct {
	orig *wire.Envelope // as the relay pushed it
	// env is orig, or for a sealed envelope, once decrypted, a copy
	// naming the sender its certificate proves.
	env  *wire.Envelope
	addr session.Address // the sender, as far as it is known
	// unsealed is a sealed envelope's outer layer, opened by openEnvelope.
	unsealed *sealed.Content
	// claimed is the identity key the message names: a sealed sender
	// certificate's, or a PreKey message's; nil for a message on an
	// existing session.
	claimed []byte
	// refusedFrom is the user whose key the log refused.
	refusedFrom string
}

// testHooks let a test observe and interrupt the pipeline; nil outside
// tests.
type testHooks struct {
	// decrypted is called for each session decryption of a received
	// message.
	decrypted func()
	// beforeCommit is called inside the receive transaction once the
	// content was handled; an error rolls it back (a process dying before
	// commit).
	beforeCommit func() error
	// afterCommit is called after commit and before the ack; false stops
	// the envelope there, unacknowledged and unreported (a process dying
	// between commit and ack).
	afterCommit func() bool
	// getDevices is called for each device list request (send.go).
	getDevices func()
}

// handleEnvelope runs one envelope through the pipeline; it reports
// whether the receive loop must stop (the device was wiped).
func (c *Client) handleEnvelope(ctx context.Context, conn *transport.Conn, env *wire.Envelope, noAck bool) (stop bool) {
	if env.Type == uint32(wire.EnvelopeType_ORG_DOCUMENT) {
		return c.handleOrgEnvelope(ctx, conn, env, noAck)
	}
	var r received
	in, err := c.openEnvelope(ctx, env)
	if err == nil {
		var first *firstContact
		if first, err = c.vetSender(ctx, conn, in); err == nil {
			err = c.commitEnvelope(ctx, conn, in, first, &r)
		}
	}
	env, addr := in.env, in.addr
	switch {
	case err == nil:
	case errors.Is(err, ErrSenderNotInLog):
		// A first message, or a known contact's under a changed key, with
		// an identity key that the log does not hold for its sender (a
		// relay impersonating them): dropped with the alarm, nothing of
		// it stored or shown, the old key kept.
		c.log.Warn("message refused: its identity key is not in the key log", "from", in.refusedFrom, "err", err)
		r = received{}
		c.emit(Event{Kind: EventError, User: in.refusedFrom, Err: err})
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
	if c.hooks.afterCommit != nil && !c.hooks.afterCommit() {
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
	return c.afterCommit(ctx, conn, env, &r)
}

// openEnvelope is the pipeline's first step, before any transaction: a
// sealed envelope's outer layer is opened with this device's identity key
// and its sender certificate validated (a refusal is a
// *SealedSenderError); a PreKey message's identity key is read.
func (c *Client) openEnvelope(ctx context.Context, env *wire.Envelope) (*inbound, error) {
	in := &inbound{orig: env, env: env, addr: session.Address{Name: env.Sender, DeviceID: env.SenderDevice}}
	switch int(env.Type) {
	case wire.EnvelopeTypeSealed:
		u, err := c.sealed.Unseal(ctx, env)
		if err != nil {
			return in, err
		}
		in.unsealed, in.claimed = u, u.Sender.IdentityKey.Serialize()
		in.addr = session.Address{Name: u.Sender.Sender, DeviceID: u.Sender.DeviceID}
	case session.MessageTypePreKey:
		// Unparsable, it fails to decrypt and is dropped in step 3.
		in.claimed, _ = session.PreKeyMessageIdentity(env.Content)
	}
	return in, nil
}

// vetSender is the pipeline's second step, before any transaction: when
// the message names an identity key that is not the one held for its
// sender (a first contact, or a changed key), that key is checked against
// the key log with the relay (transparency_first.go,
// transparency_change.go). It returns the vetted keys for the transaction;
// a refusal is ErrSenderNotInLog, with in.refusedFrom set.
func (c *Client) vetSender(ctx context.Context, conn *transport.Conn, in *inbound) (*firstContact, error) {
	first := &firstContact{}
	user := in.addr.Name
	if in.claimed == nil || user == c.acct.Username {
		return first, nil
	}
	if pub, err := keylog.LogKey(ctx, c.db); err != nil || pub == nil {
		return first, err // no pinned log key: trust on first use
	}
	rec, err := loadIdentity(ctx, c.db, user)
	if err != nil {
		return nil, err
	}
	if rec != nil && sameKey(rec.Key, in.claimed) {
		return first, nil
	}
	l := &needLookupError{user: user, key: in.claimed, changed: rec != nil, cert: rec != nil && in.unsealed != nil}
	return first, c.lookup(ctx, conn, first, l, in)
}

// lookup checks l's key in the key log and, when it is there, allows it
// for the transaction.
func (c *Client) lookup(ctx context.Context, conn *transport.Conn, first *firstContact, l *needLookupError, in *inbound) error {
	err := c.checkLookup(ctx, conn, l)
	c.flushAlarms(ctx)
	switch {
	case err == nil:
		first.allow(l)
	case errors.Is(err, ErrSenderNotInLog):
		in.refusedFrom = l.user
	}
	return err
}

// commitEnvelope is the pipeline's third step: one transaction, under the
// crypto lock, decrypts, decodes and handles the envelope (receiveTx).
// Should the transaction still meet a key the second step did not see (one
// another process stored meanwhile, or an old session of a contact whose
// key changed), it rolls back, that key is looked up, and the envelope is
// processed again: the only case where a message is decrypted twice.
func (c *Client) commitEnvelope(ctx context.Context, conn *transport.Conn, in *inbound, first *firstContact, r *received) error {
	process := func() error {
		c.cryptoMu.Lock()
		defer c.cryptoMu.Unlock()
		return c.db.Update(ctx, func(tx *store.Tx) error {
			if err := c.receiveTx(ctx, tx, first, in, r); err != nil {
				return err
			}
			if c.hooks.beforeCommit != nil {
				return c.hooks.beforeCommit()
			}
			return nil
		})
	}
	err := process()
	var l *needLookupError
	if !errors.As(err, &l) {
		return err
	}
	if err := c.lookup(ctx, conn, first, l, in); err != nil {
		return err
	}
	if err = process(); errors.As(err, new(*needLookupError)) {
		return fmt.Errorf("client: the message from %s named another identity key on a second reading", l.user)
	}
	return err
}

// receiveTx decrypts in's envelope inside the receive transaction tx,
// decodes it, and hands its content to the handler of its kind, which
// applies it to r. A sealed envelope is replaced (in.env, in.addr) by the
// opened one, which names its sender. first holds the keys vetSender
// proved (transparency_first.go).
func (c *Client) receiveTx(ctx context.Context, tx *store.Tx, first *firstContact, in *inbound, r *received) error {
	env := in.orig
	in.env, in.addr = env, session.Address{Name: env.Sender, DeviceID: env.SenderDevice}
	*r = received{isPreKey: env.Type == session.MessageTypePreKey}
	ss := c.sigStores(tx)
	ss.first = first
	var pt []byte
	var err error
	sealedIn := in.unsealed != nil
	if sealedIn {
		opened, plain, inner, err := c.decryptSealed(ctx, ss, env, in.unsealed)
		if err != nil {
			return err
		}
		env, pt = opened, plain
		in.env, in.addr = env, session.Address{Name: env.Sender, DeviceID: env.SenderDevice}
		r.isPreKey = inner == session.MessageTypePreKey
	} else {
		c.noteDecrypt()
		if pt, err = session.Decrypt(ctx, rand.Reader, ss.stores(), in.addr, int(env.Type), env.Content); err != nil {
			return err
		}
	}
	if err := first.vetChanged(ctx, tx, ss.changed); err != nil {
		return err // a changed key not yet proven in the key log
	}
	r.changed = ss.changed
	if err := sessions.Remember(ctx, tx, c.self(), env.Sender, env.SenderDevice); err != nil {
		return err
	}
	ct, err := content.Decode(pt)
	if err != nil {
		// The session advanced: commit that, drop the body.
		r.badBody = err
		return nil
	}
	if sealedIn {
		if revoked, err := sealedsender.IsRevoked(ctx, tx, env.Sender); err != nil {
			return err
		} else if revoked {
			r.sealedRevoked = env.Sender
		}
	}
	if err := c.learnProfileKey(ctx, tx, env.Sender, ct, r); err != nil {
		return err
	}
	c.keylog.NoteGossip(env.Sender, ct.GetTransparencyHead())
	return c.handlers.handle(ctx, tx, env, ct, r)
}

func (c *Client) noteDecrypt() {
	if c.hooks.decrypted != nil {
		c.hooks.decrypted()
	}
}

// afterCommit is the pipeline's last step, after the ack: the events, then
// the work that needs the network or must not hold the transaction up.
func (c *Client) afterCommit(ctx context.Context, conn *transport.Conn, env *wire.Envelope, r *received) (stop bool) {
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

// contentHandler applies one kind of content inside the receive
// transaction: it stores what the content means and records in r what to
// report after commit.
type contentHandler func(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error

// contentHandlers maps a content kind, the name of the Content body's
// field ("text", "reaction"...), to its handler. Each feature registers its
// kinds (newClient); a kind nobody registered (from a newer client) is
// ignored.
type contentHandlers map[protoreflect.Name]contentHandler

var bodyField = (&content.Content{}).ProtoReflect().Descriptor().Oneofs().ByName("body")

// contentKind is the kind of ct: the name of its body field ("" when it
// has none).
func contentKind(ct *content.Content) protoreflect.Name {
	if f := ct.ProtoReflect().WhichOneof(bodyField); f != nil {
		return f.Name()
	}
	return ""
}

// register makes h the handler of the content kinds; a kind registered
// twice, or not a body field of Content, is a programming error.
func (hs contentHandlers) register(h contentHandler, kinds ...protoreflect.Name) {
	for _, k := range kinds {
		if bodyField.Fields().ByName(k) == nil {
			panic(fmt.Sprintf("client: %q is no content kind", k))
		}
		if _, dup := hs[k]; dup {
			panic(fmt.Sprintf("client: content kind %q registered twice", k))
		}
		hs[k] = h
	}
}

func (hs contentHandlers) handle(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
	if h := hs[contentKind(ct)]; h != nil {
		return h(ctx, tx, env, ct, r)
	}
	return nil
}
