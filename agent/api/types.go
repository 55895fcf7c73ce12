// Package api is the agent's local API, version 1 (docs/agent-api.md): the
// JSON types of its requests, answers and events, their conversion from
// and to the client core's types, the stable error kinds, and a Go client
// (Client) for front ends that talk to an agent over its socket.
package api

import (
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"sotto/client"
)

// Version is the API version this package speaks; every path starts with
// Prefix.
const (
	Version = 1
	Prefix  = "/v1"
)

// SocketName is the agent's socket in the device's home folder.
const SocketName = "agent.sock"

// Kind is the stable kind of an API error: what clients branch on.
type Kind string

// Error kinds (docs/agent-api.md, Errors).
const (
	KindBadRequest      Kind = "bad_request"
	KindNotFound        Kind = "not_found"
	KindWrongPassphrase Kind = "wrong_passphrase"
	KindLocked          Kind = "locked"
	KindNoDevice        Kind = "no_device"
	KindIdentityChanged Kind = "identity_changed"
	KindExpired         Kind = "expired"
	KindForbidden       Kind = "forbidden"
	KindViewOnce        Kind = "view_once"
	KindViewedOnce      Kind = "viewed_once"
	KindRevoked         Kind = "revoked"
	KindWiped           Kind = "wiped"
	KindUnavailable     Kind = "unavailable"
	KindRefused         Kind = "refused"
	KindInternal        Kind = "internal"
)

// Error is an API error: the body of every non-2xx answer (inside
// {"error": …}) and the error field of events.
type Error struct {
	Kind    Kind   `json:"kind"`
	Message string `json:"message"`
	// AttemptsLeft is set with KindWrongPassphrase when the device wipes
	// itself after a number of failures.
	AttemptsLeft int `json:"attempts_left,omitempty"`
	// User is set with KindIdentityChanged.
	User string `json:"user,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// IsKind reports whether err is an API error of kind k.
func IsKind(err error, k Kind) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Kind == k
}

// ErrorBody is the JSON body of an error answer.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// ID is a message id: lowercase hex in JSON.
type ID []byte

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(id)), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("api: bad message id: %w", err)
	}
	*id = v
	return nil
}

// ParseID parses a message id as it appears in a path.
func ParseID(s string) (ID, error) {
	var id ID
	if err := id.UnmarshalText([]byte(s)); err != nil || len(id) == 0 || len(id) > 64 {
		return nil, fmt.Errorf("api: bad message id %q", s)
	}
	return id, nil
}

// Message is a message of a conversation (client.Message, ids in hex).
type Message struct {
	ID            ID                 `json:"id"`
	Peer          string             `json:"peer"`
	From          string             `json:"from"`
	FromDevice    uint32             `json:"from_device"`
	Outgoing      bool               `json:"outgoing,omitempty"`
	SentAt        time.Time          `json:"sent_at"`
	ServerTime    time.Time          `json:"server_time,omitzero"`
	Text          string             `json:"text"`
	QuoteID       ID                 `json:"quote_id,omitempty"`
	Delivered     bool               `json:"delivered,omitempty"`
	Read          bool               `json:"read,omitempty"`
	Synced        bool               `json:"synced,omitempty"`
	Unverified    bool               `json:"unverified,omitempty"`
	Attachment    *client.Attachment `json:"attachment,omitempty"`
	Kind          string             `json:"kind,omitempty"`
	TimerSeconds  uint32             `json:"timer_seconds,omitempty"`
	Reactions     []client.Reaction  `json:"reactions,omitempty"`
	Versions      []MessageVersion   `json:"versions,omitempty"`
	Deleted       bool               `json:"deleted,omitempty"`
	ExpireSeconds uint32             `json:"expire_seconds,omitempty"`
	ExpiresAt     time.Time          `json:"expires_at,omitzero"`
	Call          *CallRecord        `json:"call,omitempty"`
}

// MessageVersion is one version of an edited message.
type MessageVersion struct {
	ID   ID        `json:"id"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// CallRecord is what the history keeps about a call.
type CallRecord struct {
	ID              ID     `json:"id"`
	Outgoing        bool   `json:"outgoing,omitempty"`
	Outcome         string `json:"outcome"`
	DurationSeconds int64  `json:"duration_seconds,omitempty"`
	Reason          string `json:"reason,omitempty"`
}

// FromMessage converts a client message (nil: nil).
func FromMessage(m *client.Message) *Message {
	if m == nil {
		return nil
	}
	r := &Message{ID: m.ID, Peer: m.Peer, From: m.From, FromDevice: m.FromDevice, Outgoing: m.Outgoing,
		SentAt: m.SentAt, ServerTime: m.ServerTime, Text: m.Text, QuoteID: m.QuoteID, Delivered: m.Delivered,
		Read: m.Read, Synced: m.Synced, Unverified: m.Unverified, Attachment: m.Attachment, Kind: m.Kind,
		TimerSeconds: m.TimerSeconds, Reactions: m.Reactions, Deleted: m.Deleted,
		ExpireSeconds: m.ExpireSeconds, ExpiresAt: m.ExpiresAt}
	for _, v := range m.Versions {
		r.Versions = append(r.Versions, MessageVersion{ID: v.ID, Text: v.Text, At: v.At})
	}
	if m.Call != nil {
		r.Call = &CallRecord{ID: m.Call.ID, Outgoing: m.Call.Outgoing, Outcome: m.Call.Outcome,
			DurationSeconds: int64(m.Call.Duration / time.Second), Reason: m.Call.Reason}
	}
	return r
}

// FromMessages converts a list of client messages.
func FromMessages(ms []*client.Message) []*Message {
	out := make([]*Message, 0, len(ms))
	for _, m := range ms {
		out = append(out, FromMessage(m))
	}
	return out
}

// Client converts m back to the client core's type (nil: nil).
func (m *Message) Client() *client.Message {
	if m == nil {
		return nil
	}
	r := &client.Message{ID: m.ID, Peer: m.Peer, From: m.From, FromDevice: m.FromDevice, Outgoing: m.Outgoing,
		SentAt: m.SentAt, ServerTime: m.ServerTime, Text: m.Text, QuoteID: m.QuoteID, Delivered: m.Delivered,
		Read: m.Read, Synced: m.Synced, Unverified: m.Unverified, Attachment: m.Attachment, Kind: m.Kind,
		TimerSeconds: m.TimerSeconds, Reactions: m.Reactions, Deleted: m.Deleted,
		ExpireSeconds: m.ExpireSeconds, ExpiresAt: m.ExpiresAt}
	for _, v := range m.Versions {
		r.Versions = append(r.Versions, client.Version{ID: v.ID, Text: v.Text, At: v.At})
	}
	if m.Call != nil {
		r.Call = &client.CallRecord{ID: m.Call.ID, Outgoing: m.Call.Outgoing, Outcome: m.Call.Outcome,
			Duration: time.Duration(m.Call.DurationSeconds) * time.Second, Reason: m.Call.Reason}
	}
	return r
}

// ClientMessages converts a list back to the client core's type.
func ClientMessages(ms []*Message) []*client.Message {
	out := make([]*client.Message, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Client())
	}
	return out
}

// Status is the answer of GET /v1/status.
type Status struct {
	API       int       `json:"api"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Home      string    `json:"home"`
	User      string    `json:"user,omitempty"`
	Device    uint32    `json:"device,omitempty"`
	Relay     string    `json:"relay,omitempty"`
	Org       *Org      `json:"org,omitempty"`
	Locked    bool      `json:"locked"`
	Connected bool      `json:"connected"`
	Idle      bool      `json:"idle"`
	Unlocks   int       `json:"unlocks"`
	// Connects counts the relay connections made since the agent
	// started (1 when it never had to reconnect).
	Connects  int    `json:"connects"`
	LastEvent uint64 `json:"last_event"`
	// IdleLockSeconds is the organization policy's idle lock timeout
	// (0: none).
	IdleLockSeconds int64 `json:"idle_lock_seconds,omitempty"`
	// Warning is the subscription's warning (expiring, expired), if any.
	Warning string `json:"warning,omitempty"`
}

// Org is the device's organization.
type Org struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
}

// Conversation is one entry of GET /v1/conversations.
type Conversation struct {
	Peer   string   `json:"peer"`
	Unread int      `json:"unread"`
	Last   *Message `json:"last"`
}

// Contact is one entry of GET /v1/contacts.
type Contact struct {
	User     string `json:"user"`
	Verified bool   `json:"verified"`
	Changed  bool   `json:"changed"`
	Member   bool   `json:"member"`
	Revoked  bool   `json:"revoked"`
}

// Settings are the device's settings (PUT: nil fields stay as they are).
type Settings struct {
	ReadReceipts   *bool `json:"read_receipts,omitempty"`
	Typing         *bool `json:"typing,omitempty"`
	SealedFallback *bool `json:"sealed_fallback,omitempty"`
	GroupReceipts  *bool `json:"group_receipts,omitempty"`
	// Answers only: the organization's policy allows no sealed
	// fallback, and how many messages went unsealed.
	SealedOnly       bool   `json:"sealed_only,omitempty"`
	SealedDowngrades uint64 `json:"sealed_downgrades"`
}

// Notice is a verified organization notice.
type Notice = client.Notice

// Receipt reports delivery or read receipts for own messages.
type Receipt struct {
	From       string `json:"from"`
	FromDevice uint32 `json:"from_device"`
	Read       bool   `json:"read"`
	IDs        []ID   `json:"ids"`
}

// Alarm is a key transparency alarm.
type Alarm struct {
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
	User   string    `json:"user,omitempty"`
	Time   time.Time `json:"time,omitzero"`
}

// Request bodies.
type (
	UnlockRequest struct {
		Passphrase string `json:"passphrase"`
	}
	SendRequest struct {
		Text    string `json:"text"`
		QuoteID ID     `json:"quote_id,omitempty"`
	}
	FileRequest struct {
		Path     string `json:"path"`
		Caption  string `json:"caption,omitempty"`
		ViewOnce bool   `json:"view_once,omitempty"`
		// Transfer, when set, names the upload in progress events.
		Transfer string `json:"transfer,omitempty"`
	}
	ReadRequest struct {
		IDs []ID `json:"ids"`
	}
	TypingRequest struct {
		Typing bool `json:"typing"`
	}
	ReactRequest struct {
		Emoji string `json:"emoji"`
	}
	EditRequest struct {
		Text string `json:"text"`
	}
	TimerBody struct {
		Seconds int64 `json:"seconds"`
	}
	DownloadRequest struct {
		Out string `json:"out,omitempty"`
		Dir string `json:"dir,omitempty"`
		// Transfer, when set, names the download in progress events.
		Transfer string `json:"transfer,omitempty"`
	}
)

// Answer bodies.
type (
	MessageAnswer struct {
		Message *Message `json:"message"`
		// SealedDowngrade: the relay refused sealed delivery and the
		// message went with the sender's name visible to it
		// (sealed-fallback on; also an event).
		SealedDowngrade bool `json:"sealed_downgrade,omitempty"`
	}
	MessagesAnswer struct {
		Messages []*Message `json:"messages"`
	}
	ConversationsAnswer struct {
		Conversations []Conversation `json:"conversations"`
	}
	ContactsAnswer struct {
		Contacts []Contact `json:"contacts"`
	}
	NoticesAnswer struct {
		Notices []Notice `json:"notices"`
		// Rejected counts the organization documents that failed
		// verification and were dropped.
		Rejected uint64 `json:"rejected"`
	}
	AuditAnswer struct {
		// Audited counts the new key log bindings checked.
		Audited int `json:"audited"`
	}
	DownloadAnswer struct {
		Path    string   `json:"path"`
		Message *Message `json:"message"`
	}
)

// SafetyNumber is the safety number with a contact.
type SafetyNumber struct {
	User      string `json:"user"`
	Digits    string `json:"digits"`    // 60 digits
	Scannable []byte `json:"scannable"` // base64: libsignal's scannable form, for a QR code
	Verified  bool   `json:"verified"`
	Changed   bool   `json:"changed"`
}

// FromSafetyNumber converts the client core's type.
func FromSafetyNumber(s *client.SafetyNumber) *SafetyNumber {
	return &SafetyNumber{User: s.User, Digits: s.Digits, Scannable: s.Scannable, Verified: s.Verified, Changed: s.Changed}
}

// Client converts s back to the client core's type.
func (s *SafetyNumber) Client() *client.SafetyNumber {
	return &client.SafetyNumber{User: s.User, Digits: s.Digits, Scannable: s.Scannable, Verified: s.Verified, Changed: s.Changed}
}

// Progress reports a transfer named by its client (event progress).
type Progress struct {
	Transfer string `json:"transfer"`
	Done     int64  `json:"done"`
	Total    int64  `json:"total"`
}

// Device is one of the account's devices (GET /v1/devices).
type Device struct {
	ID       uint32    `json:"id"`
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Current  bool      `json:"current,omitempty"` // this device
}

// DevicesAnswer is the answer of GET /v1/devices.
type DevicesAnswer struct {
	Devices []Device `json:"devices"`
}
