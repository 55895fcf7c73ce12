package groups

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"sotto/mls"
	"sotto/wire"
)

// Message is a group message, received or sent by this device.
type Message struct {
	Group []byte `json:"group"`
	// Seq is the relay's sequence number of the message in its group
	// (the order every member sees).
	Seq    uint64 `json:"seq"`
	From   string `json:"from"`
	Device uint32 `json:"device"`
	Text   string `json:"text"`
	// Outgoing: sent by this device.
	Outgoing bool `json:"outgoing,omitempty"`
	// Received is when this device received (or sent) it; ServerTime
	// when the relay stored it (zero for a sent message).
	Received   time.Time `json:"received"`
	ServerTime time.Time `json:"server_time,omitzero"`

	// The Content's id (none for messages of older builds) and the
	// sender's clock.
	ID     []byte    `json:"id,omitempty"`
	SentAt time.Time `json:"sent_at,omitzero"`
	// Kind: "" a message, KindTimer, KindAlert.
	Kind       string      `json:"kind,omitempty"`
	QuoteID    []byte      `json:"quote_id,omitempty"`
	Mentions   []string    `json:"mentions,omitempty"`
	Reactions  []Reaction  `json:"reactions,omitempty"`
	Versions   []Version   `json:"versions,omitempty"` // edits: every version, oldest first
	Deleted    bool        `json:"deleted,omitempty"`
	Attachment *Attachment `json:"attachment,omitempty"`
	// TimerSeconds: the timer the message was sent with (KindTimer: the
	// new timer); ExpiresAt: when it disappears from this device.
	TimerSeconds uint32    `json:"timer_seconds,omitempty"`
	ExpiresAt    time.Time `json:"expires_at,omitzero"`
	// Receipts of the own messages, and the read state of received ones.
	DeliveredTo []string `json:"delivered_to,omitempty"`
	ReadBy      []string `json:"read_by,omitempty"`
	Read        bool     `json:"read,omitempty"`
	// Updated marks, in Sync's answer, an earlier message that changed.
	Updated bool `json:"updated,omitempty"`
}

// Sync fetches what the relay holds for this device's groups, processes
// it in order (Welcomes, commits, messages), acknowledges it, and returns
// the new messages. A message this device cannot process now (a commit
// from an epoch it has not reached) is left on the relay and its group's
// later messages wait with it.
func (m *Manager) Sync(ctx context.Context) ([]Message, error) {
	select {
	case m.syncing <- struct{}{}:
		defer func() { <-m.syncing }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return m.sync(ctx, nil)
}

// sync is Sync, holding the syncing token. covered are, per group, the
// highest seq of a pushed message this device could not take in before
// this sync started (pushed.go): a complete fetch covers it.
func (m *Manager) sync(ctx context.Context, covered map[string]uint64) ([]Message, error) {
	r, err := m.relay()
	if err != nil {
		return nil, err
	}
	if err := m.flushAcks(ctx, r); err != nil {
		return nil, err
	}
	if err := m.migrateMessages(ctx); err != nil {
		return nil, err
	}
	if err := m.resolveAllPending(ctx); err != nil {
		return nil, err
	}
	if _, err := m.Expire(ctx, time.Now()); err != nil {
		return nil, err
	}
	var out []Message
	rejoin := map[string]bool{}
	delivered := map[string][][]byte{}
	for round := 0; round < 2; round++ {
		var err error
		var complete bool
		if out, complete, err = m.fetchAll(ctx, r, out, rejoin, delivered); err != nil {
			return out, err
		}
		if complete {
			// Everything the relay held when the fetch started was
			// taken in, but for the groups now rejoined.
			for g, seq := range covered {
				if !rejoin[g] {
					m.seen.took(g, seq)
				}
			}
		}
		covered = nil
		if len(rejoin) == 0 {
			break
		}
		// After a fork or a withheld commit: back into the group the
		// relay holds, then take in what follows.
		for g := range rejoin {
			if err := m.rejoin(ctx, []byte(g)); err != nil {
				m.log.Warn("rejoining a group", "err", err)
			}
			m.seen.forget(g)
			delete(rejoin, g)
		}
	}
	for g, ids := range delivered {
		if err := m.sendReceipts(ctx, []byte(g), ids, false); err != nil {
			m.log.Info("group delivery receipts", "err", err)
		}
	}
	return out, nil
}

// fetchAll fetches, processes and acknowledges until the relay holds
// nothing more that this device can take in now, appending to out the
// messages it took in; groups to rejoin go to rejoin, the ids of messages
// to acknowledge with receipts to delivered. complete: it took in
// everything the relay held when it started (but for groups in rejoin).
func (m *Manager) fetchAll(ctx context.Context, r Relay, out []Message, rejoin map[string]bool, delivered map[string][][]byte) (_ []Message, complete bool, _ error) {
	stuck := map[string]bool{}
	for {
		resp, err := r.GroupFetch(ctx, 0)
		if err != nil {
			return out, false, fmt.Errorf("groups: fetch: %w", err)
		}
		acked := map[string]uint64{}
		for _, gm := range resp.Messages {
			key := string(gm.GroupId)
			if stuck[key] {
				continue
			}
			if rejoin[key] {
				// Sent in the version of the group this device is leaving.
				acked[key] = gm.Seq
				continue
			}
			if len(gm.Content) == 0 && gm.Size > 0 {
				// Left out for its size: read in parts (not under the
				// state lock).
				if gm.Content, err = readLarge(ctx, r, gm.GroupId, gm.Seq, gm.Size); err != nil {
					return out, false, err
				}
			}
			res, err := m.process(ctx, gm)
			if err != nil {
				return out, false, err
			}
			if !res.ok {
				stuck[key] = true
				continue
			}
			acked[key] = gm.Seq
			m.seen.took(key, gm.Seq)
			if res.rejoin {
				rejoin[key] = true
			}
			for _, msg := range res.msgs {
				out = append(out, msg)
				if !msg.Updated && msg.Kind == "" && msg.From != m.self.Username && len(msg.ID) > 0 {
					delivered[key] = append(delivered[key], msg.ID)
				}
			}
		}
		if len(acked) > 0 {
			var acks []*wire.GroupAck
			for g, seq := range acked {
				acks = append(acks, &wire.GroupAck{GroupId: []byte(g), Seq: seq})
			}
			if err := r.GroupAck(ctx, acks); err != nil {
				return out, false, fmt.Errorf("groups: ack: %w", err)
			}
		}
		if !resp.More || len(acked) == 0 {
			return out, !resp.More && len(stuck) == 0, nil
		}
	}
}

// ErrConnectionEnded ends Watch when the relay connection does.
var ErrConnectionEnded = errors.New("groups: the relay connection ended")

// Watch syncs once, then, each time the relay says a group has new
// messages, takes in those its push carried (or syncs again), handing
// what arrived to fn, until ctx ends or the relay
// connection does (ErrConnectionEnded: reconnect and watch again). It
// runs in the caller's goroutine.
func (m *Manager) Watch(ctx context.Context, fn func([]Message)) error {
	r, err := m.relay()
	if err != nil {
		return err
	}
	wake, done := r.GroupWaiting(), r.Done()
	ackT := time.NewTimer(time.Hour)
	ackT.Stop()
	defer ackT.Stop()
	armed := false
	msgs, err := m.Sync(ctx)
	for {
		if err != nil {
			return err
		}
		if len(msgs) > 0 && fn != nil {
			fn(msgs)
		}
		if !armed && m.seen.ackWaiting() {
			ackT.Reset(ackDelay)
			armed = true
		}
		msgs = nil
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return ErrConnectionEnded
		case <-ackT.C:
			armed = false
			err = m.flushAcksNow(ctx, r)
		case <-wake:
			// What the pushes carried, or a sync (pushed.go).
			msgs, err = m.woken(ctx, r)
		}
	}
}

// resolveAllPending settles every group's commit whose answer was lost.
func (m *Manager) resolveAllPending(ctx context.Context) error {
	es, err := m.kv.List(ctx, tblGroups)
	if err != nil {
		return err
	}
	for _, e := range es {
		var rec record
		if json.Unmarshal(e.Value, &rec) != nil || rec.Pending == nil {
			continue
		}
		if err := m.resolvePending(ctx, e.Key); err != nil {
			return err
		}
	}
	return nil
}

// processed is what process did with one delivered message.
type processed struct {
	msgs []Message // messages added or changed
	// ok false means "not now": leave it on the relay.
	ok bool
	// rejoin: a fork or a withheld commit was detected; rejoin the group.
	rejoin bool
}

// process handles one delivered group message under the state lock.
func (m *Manager) process(ctx context.Context, gm *wire.GroupMessage) (processed, error) {
	done := processed{ok: true}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch gm.Kind {
	case wire.GroupMessageKind_GROUP_WELCOME:
		return done, m.processWelcome(ctx, gm)
	case wire.GroupMessageKind_GROUP_COMMIT, wire.GroupMessageKind_GROUP_MESSAGE:
	default:
		m.log.Warn("dropping a group message of unknown kind", "kind", gm.Kind)
		return done, nil
	}
	rec, g, err := m.load(ctx, gm.GroupId)
	if errors.Is(err, ErrNoGroup) || errors.Is(err, ErrRemovedHere) {
		return done, nil // not (or no longer) ours
	}
	if err != nil {
		return processed{}, err
	}
	if rec.Quarantine != nil {
		if res, handled, err := m.processQuarantined(ctx, gm, rec); handled || err != nil {
			return res, err
		}
	}
	if gm.Kind == wire.GroupMessageKind_GROUP_COMMIT {
		epoch := gm.Epoch
		if info, err := mls.Peek(gm.Content); err == nil {
			epoch = info.Epoch
		}
		switch {
		case epoch < g.Epoch():
			// Applied already (a resend or a replay), or, if it is not
			// the commit applied, a fork.
			if d, detail := m.detectReplacedCommit(ctx, gm); d != detectNone {
				return m.detected(ctx, gm.GroupId, d, detail)
			}
			return done, nil
		case epoch > g.Epoch():
			if d, detail := m.detectUnreadable(rec, g, gm, nil); d != detectNone {
				return m.detected(ctx, gm.GroupId, d, detail)
			}
			m.log.Warn("group commit from a later epoch: an earlier commit is missing", "epoch", epoch, "have", g.Epoch())
			return processed{}, nil
		}
	}
	v := m.validator()
	g.SetCredentialValidator(v)
	before := members(g)
	pol, err := policyOf(g)
	if err != nil {
		// Not joined so (processWelcome), nor accepted by a commit.
		m.notAllowed(gm.GroupId, err)
		return done, nil
	}
	rcv, err := g.Handle(gm.Content)
	if err != nil {
		if errors.Is(err, mls.ErrCredentialRejected) || errors.Is(err, mls.ErrIdentityChanged) {
			// A commit bringing a ghost, or turning a member into another
			// identity: refused, the group stays as it was (recover.go).
			rerr := m.refused(gm.GroupId, v, "a change to the group", err)
			if gm.Kind == wire.GroupMessageKind_GROUP_COMMIT {
				return m.quarantined(ctx, gm, rec, rerr.Error())
			}
			return done, nil
		}
		if d, detail := m.detectUnreadable(rec, g, gm, err); d != detectNone {
			return m.detected(ctx, gm.GroupId, d, detail)
		}
		// Undecryptable or invalid: dropped (the group is unchanged).
		m.log.Warn("dropping a group message", "seq", gm.Seq, "err", err)
		return done, nil
	}
	if err := checkChange(pol, before, g, rcv); err != nil {
		// Not saved: the group stays as it was (policy.go, recover.go).
		m.notAllowed(gm.GroupId, err)
		if rcv.Kind == mls.CommitContent {
			return m.quarantined(ctx, gm, rec, err.Error())
		}
		return done, nil
	}
	switch rcv.Kind {
	case mls.CommitContent:
		if rcv.SenderType == mls.SenderNewMemberCommit {
			if err := externalJoinAllowed(before, members(g)); err != nil {
				// Not saved: the group stays as it was.
				m.emit(Event{Kind: EventRefused, Group: gm.GroupId, Detail: fmt.Sprintf("an external join refused: %v", err)})
				return m.quarantined(ctx, gm, rec, fmt.Sprintf("an external join refused: %v", err))
			}
		}
		if rcv.Removed {
			rec.Removed, rec.State = true, nil
			if err := m.save(ctx, gm.GroupId, rec, nil); err != nil {
				return processed{}, err
			}
			m.emit(Event{Kind: EventRemoved, Group: gm.GroupId, Detail: "this device was removed from the group"})
			return done, nil
		}
		if err := m.save(ctx, gm.GroupId, rec, g); err != nil {
			return processed{}, err
		}
		if err := m.rememberEpoch(ctx, gm.GroupId, g.Epoch(), authenticatorCheck(g), gm.Content); err != nil {
			return processed{}, err
		}
		m.emit(Event{Kind: EventChanged, Group: gm.GroupId, Detail: fmt.Sprintf("the group changed: %d devices, epoch %d", len(g.Members()), g.Epoch())})
		return done, nil
	case mls.ProposalContent:
		return done, m.save(ctx, gm.GroupId, rec, g)
	}
	// Application data: the sender's key is used up, save before
	// returning the message.
	if err := m.save(ctx, gm.GroupId, rec, g); err != nil {
		return processed{}, err
	}
	if rcv.Sender == g.LeafIndex() {
		return done, nil // this device's own, kept when sent
	}
	ct, legacy, err := decodePayload(rcv.Data)
	if err != nil {
		m.log.Warn("dropping a group message", "seq", gm.Seq, "err", err)
		return done, nil
	}
	if ct != nil {
		if d, detail := m.checkContent(ctx, gm.GroupId, rcv, ct); d != detectNone {
			return m.detected(ctx, gm.GroupId, d, detail)
		}
	}
	in := &incoming{group: gm.GroupId, seq: gm.Seq, ct: ct}
	if gm.ServerTimestampMs > 0 {
		in.serverTime = time.UnixMilli(gm.ServerTimestampMs)
	}
	for _, mb := range members(g) {
		if mb.Leaf == rcv.Sender {
			in.from, in.device = mb.Username, mb.DeviceID
		}
	}
	if !pol.MayPost(in.from) && !receiptOnly(ct) {
		m.notAllowed(gm.GroupId, fmt.Errorf("%w: a message from %s refused: only admins post in this announcement group", ErrNotAllowed, in.from))
		return done, nil
	}
	if ct == nil {
		// From an older build: text only.
		msg := &Message{Group: gm.GroupId, Seq: gm.Seq, From: in.from, Device: in.device, Text: legacy, Received: time.Now(), ServerTime: in.serverTime}
		added, err := m.keep(ctx, msg)
		if err != nil || !added {
			return processed{ok: err == nil}, err
		}
		return processed{ok: true, msgs: []Message{*msg}}, nil
	}
	msgs, err := m.applyContent(ctx, in)
	if err != nil {
		return processed{}, err
	}
	return processed{ok: true, msgs: msgs}, nil
}

// externalJoinAllowed: an external commit may only bring in a device of
// a user already in the group (a user's new device); anybody else is
// added by a member.
func externalJoinAllowed(before, after []Member) error {
	users := map[string]bool{}
	leaves := map[uint32]Member{}
	for _, mb := range before {
		users[mb.Username] = true
		leaves[mb.Leaf] = mb
	}
	for _, mb := range after {
		if old, ok := leaves[mb.Leaf]; ok && old == mb {
			continue
		}
		if !users[mb.Username] {
			return fmt.Errorf("%s is not in the group", mb.Username)
		}
	}
	return nil
}

func (m *Manager) processWelcome(ctx context.Context, gm *wire.GroupMessage) error {
	g, v, err := m.joinWelcome(ctx, gm.Content)
	if errors.Is(err, mls.ErrCredentialRejected) {
		m.refused(gm.GroupId, v, "joining the group", err)
		return nil
	}
	if err == nil {
		_, err = policyOf(g)
	}
	if err != nil {
		m.log.Warn("dropping a welcome", "err", err)
		return nil
	}
	// A Welcome delivered again (its acknowledgement was lost) for a
	// group this device is already in at that epoch or later.
	cur, curG, err := m.load(ctx, g.GroupID())
	if err == nil && curG.Epoch() >= g.Epoch() {
		return nil
	}
	if err == nil && cur.Quarantine != nil {
		// Into a group this device refused a change of: only a clean one
		// (recover.go).
		if err := m.cleanWelcome(curG, g); err != nil {
			m.emit(Event{Kind: EventRefused, Group: g.GroupID(), Detail: fmt.Sprintf("a Welcome into the group refused: %v", err)})
			return nil
		}
	}
	if err := m.save(ctx, g.GroupID(), &record{}, g); err != nil {
		return err
	}
	m.emit(Event{Kind: EventJoined, Group: g.GroupID(), Detail: fmt.Sprintf("joined a group of %d devices", len(g.Members()))})
	return nil
}

// messageConv is the message log conversation of a group (the 1:1
// conversations are "dm:USER": no clash).
func messageConv(group []byte) string { return "group:" + hex.EncodeToString(group) }

// keepMessage appends a message to its group's log; added is false when
// it was there already (the same seq, delivered again).
func (m *Manager) keepMessage(ctx context.Context, msg *Message) (added bool, err error) {
	b, err := json.Marshal(msg)
	if err != nil {
		return false, err
	}
	id := binary.BigEndian.AppendUint64(append([]byte("group\x00"), msg.Group...), msg.Seq)
	return m.kv.AppendMessage(ctx, messageConv(msg.Group), id, b)
}

// Messages returns the last limit messages of a group (0: all), received
// and sent, oldest first (in the order this device took them in). They
// stay after the device leaves or is removed from the group.
func (m *Manager) Messages(ctx context.Context, group []byte, limit int) ([]Message, error) {
	if err := m.migrateMessages(ctx); err != nil {
		return nil, err
	}
	if _, err := m.Expire(ctx, time.Now()); err != nil {
		return nil, err
	}
	vs, err := m.kv.Messages(ctx, messageConv(group), limit)
	if err != nil {
		return nil, err
	}
	out := make([]Message, 0, len(vs))
	for _, v := range vs {
		var msg Message
		if err := json.Unmarshal(v, &msg); err != nil {
			return nil, fmt.Errorf("groups: stored message: %w", err)
		}
		out = append(out, msg)
	}
	return out, nil
}

// tblLegacyMessages held received group messages (group id || seq ->
// Message) before they moved to the message log.
const tblLegacyMessages = "mls-messages"

// migrateMessages moves the messages of tblLegacyMessages to the message
// log, in group order, once per Manager (before anything new is kept): a
// message is appended, then deleted from the old table, so a crash
// between the two only appends it again, which the log ignores.
func (m *Manager) migrateMessages(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.migrated {
		return nil
	}
	es, err := m.kv.List(ctx, tblLegacyMessages)
	if err != nil {
		return err
	}
	type legacy struct {
		key []byte
		msg Message
	}
	var ls []legacy
	for _, e := range es {
		var msg Message
		if err := json.Unmarshal(e.Value, &msg); err != nil {
			return fmt.Errorf("groups: stored message: %w", err)
		}
		ls = append(ls, legacy{key: e.Key, msg: msg})
	}
	slices.SortFunc(ls, func(a, b legacy) int {
		if c := bytes.Compare(a.msg.Group, b.msg.Group); c != 0 {
			return c
		}
		return cmp.Compare(a.msg.Seq, b.msg.Seq)
	})
	for _, l := range ls {
		if _, err := m.keepMessage(ctx, &l.msg); err != nil {
			return err
		}
		if err := m.kv.Delete(ctx, tblLegacyMessages, l.key); err != nil {
			return err
		}
	}
	m.migrated = true
	return nil
}
