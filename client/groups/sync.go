package groups

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sotto/mls"
	"sotto/wire"
)

// Message is a received group message.
type Message struct {
	Group    []byte    `json:"group"`
	Seq      uint64    `json:"seq"`
	From     string    `json:"from"`
	Device   uint32    `json:"device"`
	Text     string    `json:"text"`
	Received time.Time `json:"received"`
}

// Sync fetches what the relay holds for this device's groups, processes
// it in order (Welcomes, commits, messages), acknowledges it, and returns
// the new messages. A message this device cannot process now (a commit
// from an epoch it has not reached) is left on the relay and its group's
// later messages wait with it.
func (m *Manager) Sync(ctx context.Context) ([]Message, error) {
	r, err := m.relay()
	if err != nil {
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
			m.emit(Event{Kind: EventRemoved, Group: gm.GroupId, Detail: "this device was removed from the group"})
			return nil, true, m.save(ctx, gm.GroupId, rec, nil)
		}
		return nil, true, m.save(ctx, gm.GroupId, rec, g)
	case mls.ProposalContent:
		return nil, true, m.save(ctx, gm.GroupId, rec, g)
	}
	// Application data: the sender's key is used up, save before
	// returning the message.
	if err := m.save(ctx, gm.GroupId, rec, g); err != nil {
		return nil, false, err
	}
	text, err := decodeText(rcv.Data)
	if err != nil {
		m.log.Warn("dropping a group message", "seq", gm.Seq, "err", err)
		return nil, true, nil
	}
	msg := &Message{Group: gm.GroupId, Seq: gm.Seq, Text: text, Received: time.Now()}
	for _, mb := range members(g) {
		if mb.Leaf == rcv.Sender {
			msg.From, msg.Device = mb.Username, mb.DeviceID
		}
	}
	if err := m.keepMessage(ctx, msg); err != nil {
		return nil, false, err
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

// keepMessage stores a received message.
func (m *Manager) keepMessage(ctx context.Context, msg *Message) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	key := binary.BigEndian.AppendUint64(append([]byte(nil), msg.Group...), msg.Seq)
	return m.kv.Put(ctx, tblMessages, key, b)
}

// Messages returns the messages received in a group, oldest first.
func (m *Manager) Messages(ctx context.Context, group []byte) ([]Message, error) {
	es, err := m.kv.List(ctx, tblMessages)
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, e := range es {
		var msg Message
		if err := json.Unmarshal(e.Value, &msg); err != nil {
			return nil, err
		}
		if string(msg.Group) == string(group) {
			out = append(out, msg)
		}
	}
	return out, nil
}
