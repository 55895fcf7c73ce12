package content

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"
)

// Version is the Content format this client writes and the newest it reads.
const Version = 1

const (
	// IDSize is the size of a message id.
	IDSize = 16
	// PadBlock is the padding block size, Signal's.
	PadBlock = 160
	// MaxSize bounds an encoded (padded) Content.
	MaxSize = 256 << 10
	// MaxReceiptIDs bounds the ids in one receipt.
	MaxReceiptIDs = 1000
)

// ErrInvalid reports a malformed Content.
var ErrInvalid = errors.New("content: invalid message")

// VersionError reports a Content written by a newer client.
type VersionError struct{ Version uint32 }

func (e *VersionError) Error() string {
	return fmt.Sprintf("content: message version %d is newer than this client supports (%d): upgrade sotto", e.Version, Version)
}

// NewID returns a fresh random message id.
func NewID(rnd io.Reader) ([]byte, error) {
	id := make([]byte, IDSize)
	if _, err := io.ReadFull(rnd, id); err != nil {
		return nil, fmt.Errorf("content: id: %w", err)
	}
	return id, nil
}

// NewText returns a text Content with a fresh id.
func NewText(body string, quote *Quote, now time.Time) (*Content, error) {
	id, err := NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Content{Version: Version, Id: id, SentAtMs: now.UnixMilli(),
		Body: &Content_Text{Text: &Text{Body: body, Quote: quote}}}, nil
}

// NewDeliveryReceipt returns a delivery receipt for ids.
func NewDeliveryReceipt(ids [][]byte, now time.Time) (*Content, error) {
	id, err := NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Content{Version: Version, Id: id, SentAtMs: now.UnixMilli(),
		Body: &Content_DeliveryReceipt{DeliveryReceipt: &Receipt{Ids: ids}}}, nil
}

// NewReadReceipt returns a read receipt for ids.
func NewReadReceipt(ids [][]byte, now time.Time) (*Content, error) {
	id, err := NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Content{Version: Version, Id: id, SentAtMs: now.UnixMilli(),
		Body: &Content_ReadReceipt{ReadReceipt: &Receipt{Ids: ids}}}, nil
}

// NewSyncSent wraps c, sent to destination, for the sender's other devices.
// The transcript shares c's id, so each device stores the message once.
func NewSyncSent(destination string, c *Content) *Content {
	return &Content{Version: Version, Id: c.Id, SentAtMs: c.SentAtMs,
		Body: &Content_SyncSent{SyncSent: &SyncSent{Destination: destination, Content: c}}}
}

// NewWipeOrder orders own device deviceID to wipe itself.
func NewWipeOrder(deviceID uint32, now time.Time) (*Content, error) {
	id, err := NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Content{Version: Version, Id: id, SentAtMs: now.UnixMilli(),
		Body: &Content_DeviceOrder{DeviceOrder: &DeviceOrder{Action: DeviceOrder_WIPE, DeviceId: deviceID}}}, nil
}

// NewHistoryImported tells the own other devices that the history blob
// blobID (a 16-byte relay blob id) was imported.
func NewHistoryImported(blobID []byte, now time.Time) (*Content, error) {
	id, err := NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Content{Version: Version, Id: id, SentAtMs: now.UnixMilli(),
		Body: &Content_DeviceOrder{DeviceOrder: &DeviceOrder{Action: DeviceOrder_HISTORY_IMPORTED, BlobId: blobID}}}, nil
}

// NewForeignKeyAlarm tells the own other devices what an audit found: the
// key log leaf binding the account's name to another key, under head.
func NewForeignKeyAlarm(leaf []byte, index uint64, head []byte, now time.Time) (*Content, error) {
	id, err := NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Content{Version: Version, Id: id, SentAtMs: now.UnixMilli(),
		Body: &Content_DeviceOrder{DeviceOrder: &DeviceOrder{Action: DeviceOrder_FOREIGN_KEY_ALARM,
			AlarmLeaf: leaf, AlarmLeafIndex: index, AlarmHead: head}}}, nil
}

// NewProfileKeyStateOrder tells the own other devices that the profile key
// state changed; the caller attaches the state (profile_key and
// profile_key_state).
func NewProfileKeyStateOrder(now time.Time) (*Content, error) {
	id, err := NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Content{Version: Version, Id: id, SentAtMs: now.UnixMilli(),
		Body: &Content_DeviceOrder{DeviceOrder: &DeviceOrder{Action: DeviceOrder_PROFILE_KEY_STATE}}}, nil
}

// MaxRevocations bounds the revocations in one ProfileKeyState, and
// MaxUsername the length of a username in one.
const (
	MaxRevocations = 10000
	MaxUsername    = 64
)

func validateKeyState(s *ProfileKeyState) error {
	if s == nil {
		return nil
	}
	if len(s.Revocations) > MaxRevocations {
		return fmt.Errorf("%w: %d revocations", ErrInvalid, len(s.Revocations))
	}
	for _, r := range s.Revocations {
		if r == nil || r.User == "" || len(r.User) > MaxUsername || r.Epoch == 0 || r.Epoch > s.Epoch {
			return fmt.Errorf("%w: revocation", ErrInvalid)
		}
	}
	return nil
}

// Encode validates c, serializes it and pads it for encryption.
func Encode(c *Content) ([]byte, error) {
	if err := validate(c, true); err != nil {
		return nil, err
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("content: encode: %w", err)
	}
	return Pad(b)
}

// Decode removes the padding from a decrypted plaintext and parses it.
func Decode(padded []byte) (*Content, error) {
	b, err := Unpad(padded)
	if err != nil {
		return nil, err
	}
	var c Content
	if err := proto.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := validate(&c, true); err != nil {
		return nil, err
	}
	return &c, nil
}

// Pad appends Signal's padding: 0x80 then zeros up to a multiple of PadBlock.
func Pad(b []byte) ([]byte, error) {
	n := (len(b)/PadBlock + 1) * PadBlock
	if n > MaxSize {
		return nil, fmt.Errorf("%w: too large (%d bytes)", ErrInvalid, len(b))
	}
	out := make([]byte, n)
	copy(out, b)
	out[len(b)] = 0x80
	return out, nil
}

// Unpad strips the padding added by Pad.
func Unpad(b []byte) ([]byte, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: too large (%d bytes)", ErrInvalid, len(b))
	}
	for i := len(b) - 1; i >= 0; i-- {
		switch b[i] {
		case 0:
			continue
		case 0x80:
			return b[:i], nil
		}
		break
	}
	return nil, fmt.Errorf("%w: bad padding", ErrInvalid)
}

func validate(c *Content, top bool) error {
	if c == nil {
		return fmt.Errorf("%w: empty", ErrInvalid)
	}
	if c.Version > Version {
		return &VersionError{Version: c.Version}
	}
	if c.Version == 0 {
		return fmt.Errorf("%w: missing version", ErrInvalid)
	}
	if len(c.Id) != IDSize {
		return fmt.Errorf("%w: message id must be %d bytes", ErrInvalid, IDSize)
	}
	if err := validateKeyState(c.ProfileKeyState); err != nil {
		return err
	}
	if ok, err := validateMessaging(c); ok {
		return err
	}
	switch b := c.Body.(type) {
	case nil:
		// A body this client does not know (a newer kind): callers ignore it.
	case *Content_Text:
		if b.Text == nil {
			return fmt.Errorf("%w: empty text", ErrInvalid)
		}
		if q := b.Text.Quote; q != nil && len(q.Id) != IDSize {
			return fmt.Errorf("%w: quoted id must be %d bytes", ErrInvalid, IDSize)
		}
	case *Content_DeliveryReceipt:
		return validateReceipt(b.DeliveryReceipt)
	case *Content_ReadReceipt:
		return validateReceipt(b.ReadReceipt)
	case *Content_DeviceOrder:
		// An action this client does not know (from a newer client) is
		// valid; receivers ignore it.
		o := b.DeviceOrder
		if o == nil || o.Action == DeviceOrder_ACTION_UNSPECIFIED ||
			o.Action == DeviceOrder_WIPE && o.DeviceId == 0 ||
			o.Action == DeviceOrder_HISTORY_IMPORTED && len(o.BlobId) != IDSize ||
			o.Action == DeviceOrder_FOREIGN_KEY_ALARM && (len(o.AlarmLeaf) == 0 || len(o.AlarmLeaf) > 2048 || len(o.AlarmHead) == 0 || len(o.AlarmHead) > 512) {
			return fmt.Errorf("%w: device order", ErrInvalid)
		}
		if !top {
			return fmt.Errorf("%w: nested device order", ErrInvalid)
		}
	case *Content_SyncSent:
		if !top {
			return fmt.Errorf("%w: nested sync transcript", ErrInvalid)
		}
		if b.SyncSent == nil || b.SyncSent.Destination == "" {
			return fmt.Errorf("%w: sync transcript without destination", ErrInvalid)
		}
		return validate(b.SyncSent.Content, false)
	}
	return nil
}

func validateReceipt(r *Receipt) error {
	if r == nil || len(r.Ids) == 0 || len(r.Ids) > MaxReceiptIDs {
		return fmt.Errorf("%w: receipt must list 1 to %d ids", ErrInvalid, MaxReceiptIDs)
	}
	for _, id := range r.Ids {
		if len(id) != IDSize {
			return fmt.Errorf("%w: receipt id must be %d bytes", ErrInvalid, IDSize)
		}
	}
	return nil
}
