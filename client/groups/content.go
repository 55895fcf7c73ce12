package groups

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"sotto/client/attach"
	"sotto/client/content"
	"sotto/client/store"
)

// Group application messages are client/content Contents (version, id,
// sent_at, body), encoded and padded by content.Encode, as in 1:1 chats:
// text with quote and mentions, reactions, edits, deletes, attachment
// pointers, timer changes and receipts. Messages of older builds (a type
// byte 1, then the text) still decode: a Content never starts with that
// byte (it would be field 0).

// Kinds of history entries beside messages (Message.Kind).
const (
	// KindTimer records a change of the group's disappearing-messages
	// timer (TimerSeconds).
	KindTimer = "timer"
	// KindAlert records what this device detected about the group (a
	// fork, a withheld commit) and did about it (Text).
	KindAlert = "alert"
)

// DeleteWindow is how long after sending its author may delete a message
// for everyone; receivers enforce it with the relay's timestamps, as in
// 1:1 chats.
const DeleteWindow = 24 * time.Hour

// Limits of group message fields.
const (
	MaxMentions  = 64
	quoteExcerpt = 100
)

// Errors of group messaging callers branch on.
var (
	ErrNoMessage = errors.New("groups: no such message in this group")
	ErrNotAuthor = errors.New("groups: only its author can edit or delete a message")
	ErrTooLate   = errors.New("groups: a message can be deleted for everyone only within 24 hours of sending it")
	ErrIsDeleted = errors.New("groups: the message was deleted")
	ErrBadTimer  = errors.New("groups: the disappearing-messages timer must be between 1 second and 4 weeks, or off")
)

// Reaction is one user's reaction to a group message.
type Reaction struct {
	From  string    `json:"from"`
	Emoji string    `json:"emoji"`
	At    time.Time `json:"at"` // the reactor's clock
}

// Version is one version of an edited message.
type Version struct {
	ID   []byte    `json:"id"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// Attachment is a file shared in a group: uploaded once to the relay's
// blob store, its key in the (end-to-end encrypted) group message.
type Attachment struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type,omitempty"`
	ViewOnce    bool   `json:"view_once,omitempty"`
	// Pointer is the serialized content.AttachmentPointer, with the file
	// key; kept in the encrypted store, never shown. Empty once deleted.
	Pointer []byte `json:"pointer,omitempty"`
}

// Tables of group messaging.
const (
	tblMessageIDs = "mls-message-ids" // group id || content id -> seq (8 bytes)
	tblTimers     = "mls-timers"      // group id -> timer seconds (4 bytes)
	tblExpiry     = "mls-expiry"      // expiry ms (8) || seq (8) || group id -> content id
)

func logKey(group []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte("group\x00"), group...), seq)
}

func idKey(group, id []byte) []byte { return append(append([]byte(nil), group...), id...) }

// decodePayload parses a group application message: a Content, or the
// text of an older build (legacy true).
func decodePayload(b []byte) (ct *content.Content, legacy string, err error) {
	if len(b) > 0 && b[0] == payloadText {
		if !utf8.Valid(b[1:]) {
			return nil, "", fmt.Errorf("groups: legacy text is not UTF-8")
		}
		return nil, string(b[1:]), nil
	}
	ct, err = content.Decode(b)
	if err != nil {
		return nil, "", fmt.Errorf("groups: %w", err)
	}
	if err := checkGroupContent(ct); err != nil {
		return nil, "", err
	}
	return ct, "", nil
}

// checkGroupContent adds the group fields' checks to content.Decode's.
func checkGroupContent(ct *content.Content) error {
	if ct.ExpireSeconds > content.MaxTimerSeconds {
		return fmt.Errorf("%w: timer", content.ErrInvalid)
	}
	if ec := ct.EpochCheck; ec != nil && len(ec.Authenticator) != epochCheckSize {
		return fmt.Errorf("%w: epoch check", content.ErrInvalid)
	}
	if t := ct.GetText(); t != nil {
		if len(t.Mentions) > MaxMentions {
			return fmt.Errorf("%w: %d mentions", content.ErrInvalid, len(t.Mentions))
		}
		for _, u := range t.Mentions {
			if u == "" || len(u) > maxUsername || !utf8.ValidString(u) {
				return fmt.Errorf("%w: mention", content.ErrInvalid)
			}
		}
	}
	if a := ct.GetAttachment(); a != nil {
		if err := attach.CheckPointer(a); err != nil {
			return fmt.Errorf("groups: %w", err)
		}
	}
	return nil
}

// incoming is one Content to apply to a group's history: received, or
// sent by this device.
type incoming struct {
	group      []byte
	seq        uint64
	from       string
	device     uint32
	serverTime time.Time
	ct         *content.Content
	outgoing   bool
}

// findMessage returns message id of a group.
func (m *Manager) findMessage(ctx context.Context, group, id []byte) (*Message, error) {
	sb, err := m.kv.Get(ctx, tblMessageIDs, idKey(group, id))
	if errors.Is(err, store.ErrNotFound) || err == nil && len(sb) != 8 {
		return nil, ErrNoMessage
	}
	if err != nil {
		return nil, err
	}
	b, err := m.kv.Message(ctx, messageConv(group), logKey(group, binary.BigEndian.Uint64(sb)))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoMessage // disappeared
	}
	if err != nil {
		return nil, err
	}
	var msg Message
	if err := json.Unmarshal(b, &msg); err != nil {
		return nil, fmt.Errorf("groups: stored message: %w", err)
	}
	return &msg, nil
}

// putMessage replaces a kept message.
func (m *Manager) putMessage(ctx context.Context, msg *Message) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	return m.kv.UpdateMessage(ctx, messageConv(msg.Group), logKey(msg.Group, msg.Seq), b)
}

// keep appends msg to its group's log with its id index and expiry;
// added is false when it was kept already.
func (m *Manager) keep(ctx context.Context, msg *Message) (bool, error) {
	added, err := m.keepMessage(ctx, msg)
	if err != nil || !added {
		return added, err
	}
	if len(msg.ID) > 0 {
		if err := m.kv.Put(ctx, tblMessageIDs, idKey(msg.Group, msg.ID), binary.BigEndian.AppendUint64(nil, msg.Seq)); err != nil {
			return true, err
		}
	}
	if !msg.ExpiresAt.IsZero() {
		k := binary.BigEndian.AppendUint64(nil, uint64(msg.ExpiresAt.UnixMilli()))
		k = binary.BigEndian.AppendUint64(k, msg.Seq)
		if err := m.kv.Put(ctx, tblExpiry, append(k, msg.Group...), append([]byte{0}, msg.ID...)); err != nil {
			return true, err
		}
	}
	return true, nil
}

// timer returns a group's disappearing-messages timer.
func (m *Manager) timer(ctx context.Context, group []byte) (uint32, error) {
	b, err := m.kv.Get(ctx, tblTimers, group)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil || len(b) != 4 {
		return 0, err
	}
	return binary.BigEndian.Uint32(b), nil
}

// Timer returns a group's disappearing-messages timer (0: off).
func (m *Manager) Timer(ctx context.Context, group []byte) (time.Duration, error) {
	s, err := m.timer(ctx, group)
	return time.Duration(s) * time.Second, err
}

// applyContent applies one Content to the group's history, under m.mu,
// and returns what it added or changed (changed ones marked Updated).
// Each kind is idempotent: a redelivery changes nothing.
func (m *Manager) applyContent(ctx context.Context, in *incoming) ([]Message, error) {
	ct := in.ct
	sentAt := time.UnixMilli(ct.SentAtMs)
	now := time.Now()
	base := Message{Group: in.group, Seq: in.seq, ID: ct.Id, From: in.from, Device: in.device, Outgoing: in.outgoing,
		SentAt: sentAt, Received: now, ServerTime: in.serverTime}
	newMessage := func(msg *Message) ([]Message, error) {
		if ct.ExpireSeconds > 0 && msg.Kind == "" {
			msg.TimerSeconds = ct.ExpireSeconds
			msg.ExpiresAt = now.Add(time.Duration(ct.ExpireSeconds) * time.Second)
		}
		added, err := m.keep(ctx, msg)
		if err != nil || !added {
			return nil, err
		}
		return []Message{*msg}, nil
	}
	updated := func(msg *Message) ([]Message, error) {
		if err := m.putMessage(ctx, msg); err != nil {
			return nil, err
		}
		msg.Updated = true
		return []Message{*msg}, nil
	}
	target := func(id []byte) (*Message, error) {
		t, err := m.findMessage(ctx, in.group, id)
		if errors.Is(err, ErrNoMessage) {
			m.log.Info("group message about an unknown message dropped", "from", in.from)
			return nil, nil
		}
		if err != nil || t.Deleted || t.Kind != "" {
			return nil, err
		}
		return t, nil
	}
	switch b := ct.Body.(type) {
	case *content.Content_Text:
		msg := base
		msg.Text, msg.Mentions = b.Text.Body, b.Text.Mentions
		if q := b.Text.Quote; q != nil {
			msg.QuoteID = q.Id
		}
		return newMessage(&msg)
	case *content.Content_Attachment:
		p := b.Attachment
		pb, err := proto.Marshal(p)
		if err != nil {
			return nil, err
		}
		msg := base
		msg.Text = p.Caption
		msg.Attachment = &Attachment{Name: attach.SafeName(p.FileName), Size: int64(p.Size), ContentType: p.ContentType, ViewOnce: p.ViewOnce, Pointer: pb}
		return newMessage(&msg)
	case *content.Content_TimerChange:
		s := b.TimerChange.Seconds
		msg := base
		msg.Kind, msg.TimerSeconds = KindTimer, s
		out, err := newMessage(&msg)
		if err != nil || out == nil {
			return out, err
		}
		return out, m.kv.Put(ctx, tblTimers, in.group, binary.BigEndian.AppendUint32(nil, s))
	case *content.Content_Reaction:
		t, err := target(b.Reaction.TargetId)
		if t == nil || err != nil {
			return nil, err
		}
		i := slices.IndexFunc(t.Reactions, func(x Reaction) bool { return x.From == in.from })
		if i >= 0 {
			old := t.Reactions[i]
			if old.At.After(sentAt) || (old.At.Equal(sentAt) && old.Emoji == b.Reaction.Emoji && !b.Reaction.Remove) {
				return nil, nil
			}
			t.Reactions = slices.Delete(t.Reactions, i, i+1)
		} else if b.Reaction.Remove {
			return nil, nil
		}
		if !b.Reaction.Remove {
			t.Reactions = append(t.Reactions, Reaction{From: in.from, Emoji: b.Reaction.Emoji, At: sentAt})
		}
		return updated(t)
	case *content.Content_Edit:
		t, err := target(b.Edit.TargetId)
		if t == nil || err != nil {
			return nil, err
		}
		if t.From != in.from || t.Attachment != nil {
			m.log.Info("edit of another's message dropped", "from", in.from)
			return nil, nil
		}
		if len(t.Versions) == 0 {
			t.Versions = []Version{{ID: t.ID, Text: t.Text, At: t.SentAt}}
		}
		if slices.ContainsFunc(t.Versions, func(v Version) bool { return string(v.ID) == string(ct.Id) }) {
			return nil, nil
		}
		v := Version{ID: ct.Id, Text: b.Edit.Text, At: sentAt}
		i := 0
		for i < len(t.Versions) && !t.Versions[i].At.After(v.At) {
			i++
		}
		t.Versions = slices.Insert(t.Versions, i, v)
		t.Text = t.Versions[len(t.Versions)-1].Text
		return updated(t)
	case *content.Content_Delete:
		t, err := target(b.Delete.TargetId)
		if t == nil || err != nil {
			return nil, err
		}
		if t.From != in.from {
			m.log.Info("delete of another's message dropped", "from", in.from)
			return nil, nil
		}
		if !t.ServerTime.IsZero() && !in.serverTime.IsZero() && in.serverTime.Sub(t.ServerTime) > DeleteWindow {
			m.log.Info("late delete for everyone refused", "from", in.from)
			return nil, nil
		}
		t.Deleted, t.Text, t.Versions, t.Reactions, t.QuoteID, t.Mentions, t.Attachment = true, "", nil, nil, nil, nil, nil
		return updated(t)
	case *content.Content_DeliveryReceipt:
		return m.applyReceipt(ctx, in, b.DeliveryReceipt.Ids, false)
	case *content.Content_ReadReceipt:
		return m.applyReceipt(ctx, in, b.ReadReceipt.Ids, true)
	}
	return nil, nil // a kind groups do not use, or a newer one
}

// applyReceipt marks the own messages ids as delivered to (read by) the
// receipt's sender. A receipt from one of the own devices marks received
// messages read here too.
func (m *Manager) applyReceipt(ctx context.Context, in *incoming, ids [][]byte, read bool) ([]Message, error) {
	var out []Message
	for _, id := range ids {
		t, err := m.findMessage(ctx, in.group, id)
		if errors.Is(err, ErrNoMessage) {
			continue
		}
		if err != nil {
			return out, err
		}
		if t.Deleted || t.Kind != "" {
			continue
		}
		changed := false
		switch {
		case in.from == m.self.Username:
			if read && !t.Read && t.From != m.self.Username {
				t.Read, changed = true, true
			}
		case t.From == m.self.Username:
			list := &t.DeliveredTo
			if read {
				list = &t.ReadBy
			}
			if !slices.Contains(*list, in.from) {
				*list, changed = append(*list, in.from), true
			}
		}
		if !changed {
			continue
		}
		if err := m.putMessage(ctx, t); err != nil {
			return out, err
		}
		t.Updated = true
		out = append(out, *t)
	}
	return out, nil
}

// Expire deletes the group messages whose disappearing timer ran out by
// now, on this device.
func (m *Manager) Expire(ctx context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	es, err := m.kv.List(ctx, tblExpiry)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range es {
		if len(e.Key) < 16 || int64(binary.BigEndian.Uint64(e.Key)) > now.UnixMilli() {
			continue
		}
		seq, group := binary.BigEndian.Uint64(e.Key[8:]), e.Key[16:]
		if _, err := m.kv.DeleteMessage(ctx, messageConv(group), logKey(group, seq)); err != nil {
			return n, err
		}
		if len(e.Value) > 1 {
			if err := m.kv.Delete(ctx, tblMessageIDs, idKey(group, e.Value[1:])); err != nil {
				return n, err
			}
		}
		if err := m.kv.Delete(ctx, tblExpiry, e.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
