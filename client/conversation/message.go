package conversation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"sotto/client/store"
)

// KindTimer marks a history entry that records a change of the
// conversation's disappearing-messages timer.
const KindTimer = "timer"

// DeleteWindow is how long after sending its author may delete a message
// for everyone. Receivers enforce it with the relay's timestamps of the
// message and of the deletion, so a wrong sender clock cannot stretch it.
const DeleteWindow = 24 * time.Hour

// Errors of the messaging features callers branch on.
var (
	ErrNoMessage = errors.New("conversation: no such message in this conversation")
	ErrNotAuthor = errors.New("conversation: only its author can edit or delete a message")
	ErrTooLate   = errors.New("conversation: a message can be deleted for everyone only within 24 hours of sending it")
	ErrIsDeleted = errors.New("conversation: the message was deleted")
	ErrBadTimer  = errors.New("conversation: the disappearing-messages timer must be between 1 second and 4 weeks, or off")
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
	// Attachment is set on a file; Text is its caption.
	Attachment *Attachment `json:"attachment,omitempty"`

	// Messaging features: reactions, edits, deletions, timers.
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

// Edited reports whether the message was edited.
func (m *Message) Edited() bool { return len(m.Versions) > 1 }

// Reaction is one user's reaction to a message.
type Reaction struct {
	From  string    `json:"from"`
	Emoji string    `json:"emoji"`
	At    time.Time `json:"at"` // the reactor's clock
}

// Version is one version of an edited message.
type Version struct {
	ID   []byte    `json:"id"` // the message id for the original, the edit's id after
	Text string    `json:"text"`
	At   time.Time `json:"at"` // the author's clock
}

// Attachment is what the history shows of a file sent or received. The key
// to decrypt it is kept apart (the client's attachments table), never in
// this record.
type Attachment struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type,omitempty"`
	ViewOnce    bool   `json:"view_once,omitempty"`
	// Path is the local copy, once downloaded (not for view-once files).
	Path string `json:"path,omitempty"`
	// Opened marks a view-once attachment that was opened: its key is gone.
	Opened bool `json:"opened,omitempty"`
}

// CallRecord is what the history keeps about a call.
type CallRecord struct {
	ID       []byte        `json:"id"`
	Outgoing bool          `json:"outgoing,omitempty"`
	Outcome  string        `json:"outcome"` // "answered", "missed", "rejected", "busy", "no answer", "failed", "answered elsewhere"...
	Duration time.Duration `json:"duration,omitempty"`
	Reason   string        `json:"reason,omitempty"` // why it failed
}

// Store is what this package needs of the client's encrypted store: the
// store itself and its transactions (store.Tx) both satisfy it.
type Store interface {
	Get(ctx context.Context, table string, key []byte) ([]byte, error)
	Put(ctx context.Context, table string, key, value []byte) error
	Delete(ctx context.Context, table string, key []byte) error
	List(ctx context.Context, table string) ([]store.Entry, error)
	AppendMessage(ctx context.Context, conv string, id, value []byte) (bool, error)
	UpdateMessage(ctx context.Context, conv string, id, value []byte) error
	Message(ctx context.Context, conv string, id []byte) ([]byte, error)
	Messages(ctx context.Context, conv string, limit int) ([][]byte, error)
}

// ConvFor names the store's conversation with user.
func ConvFor(user string) string { return "dm:" + user }

// MessageKey names a message for de-duplication: ids are chosen by
// senders, so they are only unique per sender.
func MessageKey(sender string, id []byte) []byte {
	return append([]byte(sender+"\x00"), id...)
}

// Normalize trims a username as typed.
func Normalize(user string) string { return strings.TrimSpace(user) }

// Load returns the message id that author wrote in the conversation with
// peer, or ErrNoMessage.
func Load(ctx context.Context, db Store, peer, author string, id []byte) (*Message, error) {
	b, err := db.Message(ctx, ConvFor(peer), MessageKey(author, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoMessage
	}
	if err != nil {
		return nil, err
	}
	var m Message
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("conversation: message record: %w", err)
	}
	return &m, nil
}

// Append stores m in its conversation unless already there, and reports
// whether it did. author is who chose the message id.
func Append(ctx context.Context, db Store, author string, m *Message) (bool, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("conversation: message record: %w", err)
	}
	return db.AppendMessage(ctx, ConvFor(m.Peer), MessageKey(author, m.ID), b)
}

// Put replaces the stored record of m (author chose its id).
func Put(ctx context.Context, db Store, author string, m *Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("conversation: message record: %w", err)
	}
	return db.UpdateMessage(ctx, ConvFor(m.Peer), MessageKey(author, m.ID), b)
}

// History returns the last limit messages of the conversation with user
// (all when limit <= 0), oldest first.
func History(ctx context.Context, db Store, user string, limit int) ([]*Message, error) {
	rows, err := db.Messages(ctx, ConvFor(user), limit)
	if err != nil {
		return nil, err
	}
	out := make([]*Message, 0, len(rows))
	for _, b := range rows {
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("conversation: message record: %w", err)
		}
		out = append(out, &m)
	}
	return out, nil
}
