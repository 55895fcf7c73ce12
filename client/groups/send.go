package groups

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/content"
	"sotto/wire"
)

// sendContent encrypts ct to the group with this device's epoch check
// (and, for a message that disappears, the group's timer), stores it on
// the relay once for every member device, and applies it to this
// device's history as the other members will.
func (m *Manager) sendContent(ctx context.Context, group []byte, ct *content.Content) ([]Message, error) {
	r, err := m.relay()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	var sealed []byte
	rec, g, err := m.load(ctx, group)
	if err == nil && !receiptOnly(ct) {
		err = m.mayPost(g)
	}
	if err == nil {
		err = func() error {
			switch ct.Body.(type) {
			case *content.Content_Text, *content.Content_Attachment:
				s, err := m.timer(ctx, group)
				if err != nil {
					return err
				}
				ct.ExpireSeconds = s
			}
			check, err := m.epochCheck(ctx, group, g)
			if err != nil {
				return err
			}
			ct.EpochCheck = check
			pt, err := content.Encode(ct)
			if err != nil {
				return err
			}
			aad, err := proto.Marshal(check)
			if err != nil {
				return err
			}
			if sealed, err = g.SealWith(pt, mlsSealOptions(aad)); err != nil {
				return err
			}
			// The sending key is used up whether or not the relay takes
			// the message: save first.
			return m.save(ctx, group, rec, g)
		}()
	}
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	resp, err := r.GroupSend(ctx, &wire.GroupSendRequest{GroupId: group, MessageId: ct.Id, Content: sealed})
	if err != nil {
		return nil, fmt.Errorf("groups: send: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out, err := m.applyContent(ctx, &incoming{group: group, seq: resp.Seq, from: m.self.Username, device: m.self.DeviceID,
		serverTime: time.Now(), ct: ct, outgoing: true})
	if err != nil {
		return nil, fmt.Errorf("groups: sent, but not kept: %w", err)
	}
	return out, nil
}

func newContent() (*content.Content, error) {
	id, err := content.NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &content.Content{Version: content.Version, Id: id, SentAtMs: time.Now().UnixMilli()}, nil
}

// SendOptions tune SendText.
type SendOptions struct {
	// QuoteID is the id of the group message this one replies to.
	QuoteID []byte
}

// Send sends text to the group.
func (m *Manager) Send(ctx context.Context, group []byte, text string) (*Message, error) {
	return m.SendText(ctx, group, text, SendOptions{})
}

// SendText sends text to the group, as a reply to o.QuoteID when set;
// every "@user" naming a member is sent as a mention.
func (m *Manager) SendText(ctx context.Context, group []byte, text string, o SendOptions) (*Message, error) {
	ct, err := newContent()
	if err != nil {
		return nil, err
	}
	t := &content.Text{Body: text}
	if o.QuoteID != nil {
		q, err := m.liveMessage(ctx, group, o.QuoteID)
		if err != nil {
			return nil, err
		}
		t.Quote = &content.Quote{Id: q.ID, Author: q.From, Text: excerpt(q.Text, quoteExcerpt)}
	}
	if t.Mentions, err = m.mentions(ctx, group, text); err != nil {
		return nil, err
	}
	ct.Body = &content.Content_Text{Text: t}
	return m.sendOne(ctx, group, ct)
}

// SendAttachment shares a file uploaded to the relay's blob store
// (client/attach) with the group: its pointer, with the file's key,
// travels in the encrypted group message.
func (m *Manager) SendAttachment(ctx context.Context, group []byte, p *content.AttachmentPointer) (*Message, error) {
	ct, err := newContent()
	if err != nil {
		return nil, err
	}
	ct.Body = &content.Content_Attachment{Attachment: p}
	return m.sendOne(ctx, group, ct)
}

func (m *Manager) sendOne(ctx context.Context, group []byte, ct *content.Content) (*Message, error) {
	out, err := m.sendContent(ctx, group, ct)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("groups: sent, but not kept")
	}
	return &out[0], nil
}

// React sets this user's reaction to message id (an empty emoji withdraws
// it).
func (m *Manager) React(ctx context.Context, group, id []byte, emoji string) (*Message, error) {
	t, err := m.liveMessage(ctx, group, id)
	if err != nil {
		return nil, err
	}
	remove := emoji == ""
	if remove {
		for _, r := range t.Reactions {
			if r.From == m.self.Username {
				emoji = r.Emoji
			}
		}
		if emoji == "" {
			return t, nil
		}
	}
	ct, err := content.NewReaction(t.From, t.ID, emoji, remove, time.Now())
	if err != nil {
		return nil, err
	}
	return m.sendUpdate(ctx, group, ct, id)
}

// Edit replaces the text of this user's message id; every member keeps
// the earlier versions.
func (m *Manager) Edit(ctx context.Context, group, id []byte, text string) (*Message, error) {
	t, err := m.ownMessage(ctx, group, id)
	if err != nil {
		return nil, err
	}
	if t.Attachment != nil {
		return nil, fmt.Errorf("%w: a file's caption cannot be edited", ErrNotAuthor)
	}
	if t.Text == text {
		return t, nil
	}
	ct, err := content.NewEdit(t.ID, text, time.Now())
	if err != nil {
		return nil, err
	}
	return m.sendUpdate(ctx, group, ct, id)
}

// Delete deletes this user's message id on every member's devices, within
// DeleteWindow of sending it.
func (m *Manager) Delete(ctx context.Context, group, id []byte) (*Message, error) {
	t, err := m.ownMessage(ctx, group, id)
	if err != nil {
		return nil, err
	}
	if !t.ServerTime.IsZero() && time.Since(t.ServerTime) > DeleteWindow {
		return nil, ErrTooLate
	}
	ct, err := content.NewDelete(t.ID, time.Now())
	if err != nil {
		return nil, err
	}
	return m.sendUpdate(ctx, group, ct, id)
}

// SetTimer sets the group's disappearing-messages timer (0: off) for
// every member: the messages sent after it disappear that long after each
// device took them in.
func (m *Manager) SetTimer(ctx context.Context, group []byte, d time.Duration) (*Message, error) {
	if d < 0 || d > content.MaxTimerSeconds*time.Second || d > 0 && d < time.Second {
		return nil, ErrBadTimer
	}
	ct, err := content.NewTimerChange(d, time.Now())
	if err != nil {
		return nil, err
	}
	return m.sendOne(ctx, group, ct)
}

// sendUpdate sends a change to message id and returns the message as it
// is now.
func (m *Manager) sendUpdate(ctx context.Context, group []byte, ct *content.Content, id []byte) (*Message, error) {
	if _, err := m.sendContent(ctx, group, ct); err != nil {
		return nil, err
	}
	return m.findMessage(ctx, group, id)
}

// liveMessage returns message id, refusing a deleted one.
func (m *Manager) liveMessage(ctx context.Context, group, id []byte) (*Message, error) {
	t, err := m.findMessage(ctx, group, id)
	if err != nil {
		return nil, err
	}
	if t.Deleted {
		return nil, ErrIsDeleted
	}
	if t.Kind != "" {
		return nil, ErrNoMessage
	}
	return t, nil
}

// ownMessage returns this user's message id (from any of its devices).
func (m *Manager) ownMessage(ctx context.Context, group, id []byte) (*Message, error) {
	t, err := m.liveMessage(ctx, group, id)
	if err != nil {
		return nil, err
	}
	if t.From != m.self.Username {
		return nil, ErrNotAuthor
	}
	return t, nil
}

// Message returns message id of a group.
func (m *Manager) Message(ctx context.Context, group, id []byte) (*Message, error) {
	return m.findMessage(ctx, group, id)
}

// mentions lists the members text names as "@user".
func (m *Manager) mentions(ctx context.Context, group []byte, text string) ([]string, error) {
	if !strings.Contains(text, "@") {
		return nil, nil
	}
	m.mu.Lock()
	_, g, err := m.load(ctx, group)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []string
	ms := members(g)
	for _, w := range strings.Fields(text) {
		u, ok := strings.CutPrefix(w, "@")
		u = strings.TrimRight(u, ".,;:!?)")
		if !ok || slices.Contains(out, u) || len(out) == MaxMentions {
			continue
		}
		if slices.ContainsFunc(ms, func(mb Member) bool { return mb.Username == u }) {
			out = append(out, u)
		}
	}
	return out, nil
}

// MarkRead marks the received messages of a group read and, when
// receipts are on (Options.Receipts), tells the group in one read
// receipt per 1,000 messages.
func (m *Manager) MarkRead(ctx context.Context, group []byte) (int, error) {
	ms, err := m.Messages(ctx, group, 0)
	if err != nil {
		return 0, err
	}
	var ids [][]byte
	m.mu.Lock()
	for i := range ms {
		msg := &ms[i]
		if msg.Outgoing || msg.From == m.self.Username || msg.Read || msg.Deleted || msg.Kind != "" || len(msg.ID) == 0 {
			continue
		}
		msg.Read = true
		if err = m.putMessage(ctx, msg); err != nil {
			break
		}
		ids = append(ids, msg.ID)
	}
	m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return len(ids), m.sendReceipts(ctx, group, ids, true)
}

// sendReceipts sends delivery (or read) receipts for ids, batched, when
// receipts are on.
func (m *Manager) sendReceipts(ctx context.Context, group []byte, ids [][]byte, read bool) error {
	if len(ids) == 0 || m.opts.Receipts == nil || !m.opts.Receipts(ctx) {
		return nil
	}
	for batch := range slices.Chunk(ids, content.MaxReceiptIDs) {
		var ct *content.Content
		var err error
		if read {
			ct, err = content.NewReadReceipt(batch, time.Now())
		} else {
			ct, err = content.NewDeliveryReceipt(batch, time.Now())
		}
		if err != nil {
			return err
		}
		if _, err := m.sendContent(ctx, group, ct); err != nil {
			return err
		}
	}
	return nil
}

func excerpt(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
