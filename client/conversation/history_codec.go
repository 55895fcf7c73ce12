package conversation

// The history export format (history transfer at link time: the client's history.go).
//
// The plaintext is a 12-byte header, magic "SOTTOHX\n", the format version
// (big-endian uint16, 1) and flags (uint16, 0), then frames: a kind byte,
// the body length as a uvarint, and the body (a JSON object). The frames
// come in kind order (settings, contacts, timers, messages) and the last is
// an end frame with the counts of the others, so a cut or padded export is
// refused even before the blob's own digest is checked. The whole plaintext
// is sealed as one attachment blob (client/attach); this format only needs
// to be safe to parse, which the decoder makes sure of: every length and
// count is bounded and every field is checked before anything is imported.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"sotto/client/attach"
	"sotto/client/content"
	"sotto/signal/keys"
)

// ErrBadHistory reports a history export that does not parse or breaks
// the format's rules. Nothing of such an export is imported.
var ErrBadHistory = errors.New("conversation: malformed history export")

const (
	historyMagic   = "SOTTOHX\n"
	historyVersion = 1
	historyHeader  = 12

	// MaxHistorySize bounds the plaintext of a history export (it is
	// decoded in memory before anything is imported).
	MaxHistorySize = 128 << 20
	// Bounds of one frame and of the counts.
	maxHistoryFrame    = 256 << 10
	maxHistoryMessages = 1_000_000
	maxHistoryContacts = 100_000
	maxHistoryTimers   = 100_000
	maxHistoryUser     = 64
)

// Frame kinds, in the order they must come.
const (
	frameSettings byte = 1
	frameContact  byte = 2
	frameTimer    byte = 3
	frameMessage  byte = 4
	frameEnd      byte = 5
)

// HistoryBundle is the content of a history export.
type HistoryBundle struct {
	Settings *SettingsRecord
	Contacts []HistoryContact
	Timers   []HistoryTimer
	Messages []HistoryMessage
}

// Wipe clears the file keys (attachment pointers) of b's messages.
func (b *HistoryBundle) Wipe() {
	for i := range b.Messages {
		clear(b.Messages[i].Pointer)
	}
}

// HistoryContact is a contact with its identity key and verification state.
type HistoryContact struct {
	User     string `json:"user"`
	Key      []byte `json:"key"`
	Verified bool   `json:"verified,omitempty"`
	Changed  bool   `json:"changed,omitempty"`
	Previous []byte `json:"previous,omitempty"`
	// Bound: the newest key log leaf the exporting device verified for
	// the contact (client/keylog), so that the new device starts
	// with the same stale-binding rule. Absent in older exports.
	Bound *Binding `json:"bound,omitempty"`
}

// HistoryTimer is a conversation's disappearing-messages timer.
type HistoryTimer struct {
	Peer    string `json:"peer"`
	Seconds uint32 `json:"seconds"`
	AtMs    int64  `json:"at_ms"`
}

// HistoryMessage is one message record with the author under whose name
// it is stored (who chose its id) and, for a file that is not view-once,
// its attachment pointer (with the file key).
type HistoryMessage struct {
	Author  string   `json:"author"`
	Message *Message `json:"message"`
	Pointer []byte   `json:"pointer,omitempty"` // serialized content.AttachmentPointer
}

// Binding is the newest key log leaf a device verified for a contact: the
// leaf's index and the key it binds (the JSON form of keylog.BoundRecord).
type Binding struct {
	Index uint64 `json:"index"`
	Key   []byte `json:"key"`
}

// SettingsRecord is the user's messaging preferences as stored, so that
// its zero value means the defaults (the client's Settings shows them).
type SettingsRecord struct {
	NoReadReceipts bool `json:"no_read_receipts,omitempty"`
	Typing         bool `json:"typing,omitempty"`
	SealedFallback bool `json:"sealed_fallback,omitempty"`
	GroupReceipts  bool `json:"group_receipts,omitempty"`
}

type historyEnd struct {
	Settings int `json:"settings"`
	Contacts int `json:"contacts"`
	Timers   int `json:"timers"`
	Messages int `json:"messages"`
}

// EncodeHistory serializes b (already checked by the exporter).
func EncodeHistory(b *HistoryBundle) ([]byte, error) {
	out := make([]byte, historyHeader, 4096)
	copy(out, historyMagic)
	binary.BigEndian.PutUint16(out[8:], historyVersion)
	frame := func(kind byte, v any) error {
		body, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("conversation: history export: %w", err)
		}
		if len(body) > maxHistoryFrame {
			return fmt.Errorf("conversation: history export: a record of %d bytes exceeds the limit", len(body))
		}
		out = append(out, kind)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
		if len(out) > MaxHistorySize {
			return fmt.Errorf("conversation: history export exceeds %d MiB", MaxHistorySize>>20)
		}
		return nil
	}
	end := historyEnd{Contacts: len(b.Contacts), Timers: len(b.Timers), Messages: len(b.Messages)}
	if b.Settings != nil {
		end.Settings = 1
		if err := frame(frameSettings, b.Settings); err != nil {
			return nil, err
		}
	}
	for i := range b.Contacts {
		if err := frame(frameContact, &b.Contacts[i]); err != nil {
			return nil, err
		}
	}
	for i := range b.Timers {
		if err := frame(frameTimer, &b.Timers[i]); err != nil {
			return nil, err
		}
	}
	for i := range b.Messages {
		if err := frame(frameMessage, &b.Messages[i]); err != nil {
			return nil, err
		}
	}
	if err := frame(frameEnd, &end); err != nil {
		return nil, err
	}
	return out, nil
}

// FitHistory drops the oldest messages (by the relay's time) until the
// export of b fits in limit bytes, and reports how many it dropped: a
// history too large to transfer whole still brings the recent part.
func FitHistory(b *HistoryBundle, limit int) (int, error) {
	frameSize := func(v any) (int, error) {
		body, err := json.Marshal(v)
		if err != nil {
			return 0, fmt.Errorf("conversation: history export: %w", err)
		}
		return 1 + binary.PutUvarint(make([]byte, binary.MaxVarintLen64), uint64(len(body))) + len(body), nil
	}
	total := historyHeader + 128 // the end frame
	for _, v := range []any{b.Settings, b.Contacts, b.Timers} {
		n, err := frameSize(v) // an upper bound for their frames
		if err != nil {
			return 0, err
		}
		total += n
	}
	sizes := make([]int, len(b.Messages))
	msgs := 0
	for i := range b.Messages {
		n, err := frameSize(&b.Messages[i])
		if err != nil {
			return 0, err
		}
		sizes[i] = n
		msgs += n
	}
	if total+msgs <= limit {
		return 0, nil
	}
	order := make([]int, len(b.Messages))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(x, y int) int {
		return b.Messages[y].Message.ServerTime.Compare(b.Messages[x].Message.ServerTime)
	})
	keep := make([]bool, len(b.Messages))
	budget := limit - total
	for _, i := range order {
		if sizes[i] > budget {
			break
		}
		budget -= sizes[i]
		keep[i] = true
	}
	kept := b.Messages[:0]
	for i, m := range b.Messages {
		if keep[i] {
			kept = append(kept, m)
		}
	}
	dropped := len(b.Messages) - len(kept)
	clear(b.Messages[len(kept):])
	b.Messages = kept
	return dropped, nil
}

func badHistory(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadHistory}, args...)...)
}

// DecodeHistory parses and checks an export. Errors wrap ErrBadHistory.
func DecodeHistory(p []byte) (*HistoryBundle, error) {
	if len(p) > MaxHistorySize {
		return nil, badHistory("larger than %d MiB", MaxHistorySize>>20)
	}
	if len(p) < historyHeader || string(p[:8]) != historyMagic {
		return nil, badHistory("not a history export")
	}
	if v := binary.BigEndian.Uint16(p[8:]); v != historyVersion {
		return nil, badHistory("unsupported version %d", v)
	}
	if f := binary.BigEndian.Uint16(p[10:]); f != 0 {
		return nil, badHistory("unknown flags %#x", f)
	}
	p = p[historyHeader:]
	var b HistoryBundle
	var last byte
	seenMsg := make(map[string]bool)
	for {
		if len(p) == 0 {
			return nil, badHistory("no end frame")
		}
		kind := p[0]
		n, k := binary.Uvarint(p[1:])
		if k <= 0 || n > maxHistoryFrame || n > uint64(len(p)-1-k) {
			return nil, badHistory("bad frame length")
		}
		body := p[1+k : 1+k+int(n)]
		p = p[1+k+int(n):]
		if kind < last || (kind == frameSettings && last == frameSettings) {
			return nil, badHistory("frames out of order")
		}
		last = kind
		switch kind {
		case frameSettings:
			var s SettingsRecord
			if err := strictJSON(body, &s); err != nil {
				return nil, err
			}
			b.Settings = &s
		case frameContact:
			if len(b.Contacts) >= maxHistoryContacts {
				return nil, badHistory("too many contacts")
			}
			var c HistoryContact
			if err := strictJSON(body, &c); err != nil {
				return nil, err
			}
			if err := c.Check(); err != nil {
				return nil, err
			}
			if len(b.Contacts) > 0 && b.Contacts[len(b.Contacts)-1].User >= c.User {
				return nil, badHistory("contacts not sorted or repeated")
			}
			b.Contacts = append(b.Contacts, c)
		case frameTimer:
			if len(b.Timers) >= maxHistoryTimers {
				return nil, badHistory("too many timers")
			}
			var t HistoryTimer
			if err := strictJSON(body, &t); err != nil {
				return nil, err
			}
			if !ValidUser(t.Peer) || t.Seconds > content.MaxTimerSeconds {
				return nil, badHistory("bad timer")
			}
			if len(b.Timers) > 0 && b.Timers[len(b.Timers)-1].Peer >= t.Peer {
				return nil, badHistory("timers not sorted or repeated")
			}
			b.Timers = append(b.Timers, t)
		case frameMessage:
			if len(b.Messages) >= maxHistoryMessages {
				return nil, badHistory("too many messages")
			}
			var m HistoryMessage
			if err := strictJSON(body, &m); err != nil {
				return nil, err
			}
			if err := m.Check(); err != nil {
				return nil, err
			}
			key := string(MessageKey(m.Author, m.Message.ID))
			if seenMsg[key] {
				return nil, badHistory("message repeated")
			}
			seenMsg[key] = true
			b.Messages = append(b.Messages, m)
		case frameEnd:
			var e historyEnd
			if err := strictJSON(body, &e); err != nil {
				return nil, err
			}
			settings := 0
			if b.Settings != nil {
				settings = 1
			}
			if e != (historyEnd{Settings: settings, Contacts: len(b.Contacts), Timers: len(b.Timers), Messages: len(b.Messages)}) {
				return nil, badHistory("counts do not match the end frame")
			}
			if len(p) != 0 {
				return nil, badHistory("data after the end frame")
			}
			return &b, nil
		default:
			return nil, badHistory("unknown frame kind %d", kind)
		}
	}
}

// strictJSON decodes one JSON object with no unknown fields and nothing
// after it.
func strictJSON(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return badHistory("a record does not parse")
	}
	if d.More() {
		return badHistory("data after a record")
	}
	return nil
}

// ValidUser reports whether u is a plausible username as stored: not
// empty, bounded, UTF-8, no NUL (used as a separator in keys), trimmed.
func ValidUser(u string) bool {
	return u != "" && len(u) <= maxHistoryUser && utf8.ValidString(u) && bytes.IndexByte([]byte(u), 0) < 0 && Normalize(u) == u
}

// Check applies the format's rules to a contact record.
func (c *HistoryContact) Check() error {
	if !ValidUser(c.User) {
		return badHistory("bad contact name")
	}
	if _, err := keys.ParsePublicKey(c.Key); err != nil {
		return badHistory("bad identity key for a contact")
	}
	if c.Previous != nil {
		if _, err := keys.ParsePublicKey(c.Previous); err != nil {
			return badHistory("bad previous identity key for a contact")
		}
	}
	if c.Bound != nil {
		if _, err := keys.ParsePublicKey(c.Bound.Key); err != nil {
			return badHistory("bad key log binding for a contact")
		}
	}
	return nil
}

// Check applies the format's rules to a message record (the exporter
// leaves out one that breaks them).
func (h *HistoryMessage) Check() error {
	m := h.Message
	switch {
	case m == nil:
		return badHistory("empty message record")
	case len(m.ID) != content.IDSize:
		return badHistory("bad message id")
	case !ValidUser(h.Author) || !ValidUser(m.Peer) || !ValidUser(m.From):
		return badHistory("bad message author or peer")
	case m.Kind != "" && m.Kind != KindTimer:
		return badHistory("unknown message kind")
	case !utf8.ValidString(m.Text):
		return badHistory("message text is not UTF-8")
	case m.QuoteID != nil && len(m.QuoteID) != content.IDSize:
		return badHistory("bad quoted id")
	case m.TimerSeconds > content.MaxTimerSeconds || m.ExpireSeconds > content.MaxTimerSeconds:
		return badHistory("bad timer")
	case m.ExpireSeconds == 0 && !m.ExpiresAt.IsZero():
		return badHistory("an expiry without a timer")
	}
	for _, v := range m.Versions {
		if len(v.ID) != content.IDSize || !utf8.ValidString(v.Text) {
			return badHistory("bad message version")
		}
	}
	for _, r := range m.Reactions {
		if !ValidUser(r.From) || !utf8.ValidString(r.Emoji) || len(r.Emoji) > 64 {
			return badHistory("bad reaction")
		}
	}
	if a := m.Attachment; a != nil {
		if a.Size < 0 || a.Size > attach.MaxFileSize || len(a.Name) > 255 || !utf8.ValidString(a.Name) {
			return badHistory("bad attachment")
		}
		if a.Name != "" && attach.BaseName(a.Name) != a.Name {
			return badHistory("attachment name is not a plain name")
		}
	}
	if h.Pointer != nil {
		if m.Attachment == nil || m.Attachment.ViewOnce {
			return badHistory("an attachment key for a message without a file, or a view-once file")
		}
		var p content.AttachmentPointer
		if err := proto.Unmarshal(h.Pointer, &p); err != nil {
			return badHistory("attachment pointer does not parse")
		}
		if err := attach.CheckPointer(&p); err != nil || p.ViewOnce {
			return badHistory("bad attachment pointer")
		}
	}
	return nil
}
