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
	r, err := m.relay()
	if err != nil {
		return nil, err
	}
	if err := m.migrateMessages(ctx); err != nil {
		return nil, err
	}
	if err := m.resolveAllPending(ctx); err != nil {
		return nil, err
	}
	var out []Message
	stuck := map[string]bool{}
	for {
		resp, err := r.GroupFetch(ctx, 0)
		if err != nil {
			return out, fmt.Errorf("groups: fetch: %w", err)
		}
		acked := map[string]uint64{}
		for _, gm := range resp.Messages {
			key := string(gm.GroupId)
			if stuck[key] {
				continue
			}
			if len(gm.Content) == 0 && gm.Size > 0 {
				// Left out for its size: read in parts (not under the
				// state lock).
				if gm.Content, err = readLarge(ctx, r, gm.GroupId, gm.Seq, gm.Size); err != nil {
					return out, err
				}
			}
			msg, ok, err := m.process(ctx, gm)
			if err != nil {
				return out, err
			}
			if !ok {
				stuck[key] = true
				continue
			}
			acked[key] = gm.Seq
			if msg != nil {
				out = append(out, *msg)
			}
		}
		if len(acked) > 0 {
			var acks []*wire.GroupAck
			for g, seq := range acked {
				acks = append(acks, &wire.GroupAck{GroupId: []byte(g), Seq: seq})
			}
			if err := r.GroupAck(ctx, acks); err != nil {
				return out, fmt.Errorf("groups: ack: %w", err)
			}
		}
		if !resp.More || len(acked) == 0 {
			return out, nil
		}
	}
}

// ErrConnectionEnded ends Watch when the relay connection does.
var ErrConnectionEnded = errors.New("groups: the relay connection ended")

// Watch syncs once, then again each time the relay says a group has new
// messages, handing what arrived to fn, until ctx ends or the relay
// connection does (ErrConnectionEnded: reconnect and watch again). It
// runs in the caller's goroutine.
func (m *Manager) Watch(ctx context.Context, fn func([]Message)) error {
	r, err := m.relay()
	if err != nil {
		return err
	}
	wake, done := r.GroupWaiting(), r.Done()
	for {
		msgs, err := m.Sync(ctx)
		if err != nil {
			return err
		}
		if len(msgs) > 0 && fn != nil {
			fn(msgs)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-done:
			return ErrConnectionEnded
		case <-wake:
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

// process handles one delivered group message under the state lock. ok
// false means "not now": leave it on the relay.
func (m *Manager) process(ctx context.Context, gm *wire.GroupMessage) (*Message, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch gm.Kind {
	case wire.GroupMessageKind_GROUP_WELCOME:
		return nil, true, m.processWelcome(ctx, gm)
	case wire.GroupMessageKind_GROUP_COMMIT, wire.GroupMessageKind_GROUP_MESSAGE:
	default:
		m.log.Warn("dropping a group message of unknown kind", "kind", gm.Kind)
		return nil, true, nil
	}
	rec, g, err := m.load(ctx, gm.GroupId)
	if errors.Is(err, ErrNoGroup) || errors.Is(err, ErrRemovedHere) {
		return nil, true, nil // not (or no longer) ours
	}
	if err != nil {
		return nil, false, err
	}
	if gm.Kind == wire.GroupMessageKind_GROUP_COMMIT {
		switch {
		case gm.Epoch < g.Epoch():
			return nil, true, nil // applied already (a resend)
		case gm.Epoch > g.Epoch():
			m.log.Warn("group commit from a later epoch: an earlier commit is missing", "epoch", gm.Epoch, "have", g.Epoch())
			return nil, false, nil
		}
	}
	v := m.validator()
	g.SetCredentialValidator(v)
	before := members(g)
	pol, err := policyOf(g)
	if err != nil {
		// Not joined so (processWelcome), nor accepted by a commit.
		m.notAllowed(gm.GroupId, err)
		return nil, true, nil
	}
	rcv, err := g.Handle(gm.Content)
	if err != nil {
		if errors.Is(err, mls.ErrCredentialRejected) || errors.Is(err, mls.ErrIdentityChanged) {
			// A commit bringing a ghost, or turning a member into another
			// identity: refused, the group stays as it was.
			m.refused(gm.GroupId, v, "a change to the group", err)
			return nil, true, nil
		}
		// Undecryptable or invalid: dropped (the group is unchanged).
		m.log.Warn("dropping a group message", "seq", gm.Seq, "err", err)
		return nil, true, nil
	}
	if err := checkChange(pol, before, g, rcv); err != nil {
		// Not saved: the group stays as it was (policy.go).
		m.notAllowed(gm.GroupId, err)
		return nil, true, nil
	}
	switch rcv.Kind {
	case mls.CommitContent:
		if rcv.SenderType == mls.SenderNewMemberCommit {
			if err := externalJoinAllowed(before, members(g)); err != nil {
				// Not saved: the group stays as it was.
				m.emit(Event{Kind: EventRefused, Group: gm.GroupId, Detail: fmt.Sprintf("an external join refused: %v", err)})
				return nil, true, nil
			}
		}
		if rcv.Removed {
			rec.Removed, rec.State = true, nil
			if err := m.save(ctx, gm.GroupId, rec, nil); err != nil {
				return nil, false, err
			}
			m.emit(Event{Kind: EventRemoved, Group: gm.GroupId, Detail: "this device was removed from the group"})
			return nil, true, nil
		}
		if err := m.save(ctx, gm.GroupId, rec, g); err != nil {
			return nil, false, err
		}
		m.emit(Event{Kind: EventChanged, Group: gm.GroupId, Detail: fmt.Sprintf("the group changed: %d devices, epoch %d", len(g.Members()), g.Epoch())})
		return nil, true, nil
	case mls.ProposalContent:
		return nil, true, m.save(ctx, gm.GroupId, rec, g)
	}
	// Application data: the sender's key is used up, save before
	// returning the message.
	if err := m.save(ctx, gm.GroupId, rec, g); err != nil {
		return nil, false, err
	}
	if rcv.Sender == g.LeafIndex() {
		return nil, true, nil // this device's own, kept when sent
	}
	text, err := decodeText(rcv.Data)
	if err != nil {
		m.log.Warn("dropping a group message", "seq", gm.Seq, "err", err)
		return nil, true, nil
	}
	msg := &Message{Group: gm.GroupId, Seq: gm.Seq, Text: text, Received: time.Now()}
	if gm.ServerTimestampMs > 0 {
		msg.ServerTime = time.UnixMilli(gm.ServerTimestampMs)
	}
	for _, mb := range members(g) {
		if mb.Leaf == rcv.Sender {
			msg.From, msg.Device = mb.Username, mb.DeviceID
		}
	}
	if !pol.MayPost(msg.From) {
		m.notAllowed(gm.GroupId, fmt.Errorf("%w: a message from %s refused: only admins post in this announcement group", ErrNotAllowed, msg.From))
		return nil, true, nil
	}
	added, err := m.keepMessage(ctx, msg)
	if err != nil {
		return nil, false, err
	}
	if !added {
		return nil, true, nil // delivered again: its ack was lost
	}
	return msg, true, nil
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
	if _, cur, err := m.load(ctx, g.GroupID()); err == nil && cur.Epoch() >= g.Epoch() {
		return nil
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
