package relay

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"
)

// AccountID is the relay's 16-byte identifier of an account.
type AccountID [16]byte

func (a AccountID) String() string { return hex.EncodeToString(a[:]) }

// ParseAccountID parses the hex form printed by String.
func ParseAccountID(s string) (AccountID, error) {
	var a AccountID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(a) {
		return a, fmt.Errorf("relay: bad account id %q", s)
	}
	copy(a[:], b)
	return a, nil
}

// DeviceAddr addresses one device of one account.
type DeviceAddr struct {
	Account AccountID
	Device  uint32
}

func (d DeviceAddr) String() string { return fmt.Sprintf("%s.%d", d.Account, d.Device) }

// EnvelopeID is the relay's id of a stored envelope: an 8-byte sequence
// number assigned by the mailbox followed by an 8-byte random tag, so that
// an id can neither be guessed nor collide.
type EnvelopeID [16]byte

// Envelope is one ciphertext addressed to one device.
type Envelope struct {
	ID           EnvelopeID
	Recipient    DeviceAddr
	Sender       string // sender username
	SenderDevice uint32
	Timestamp    time.Time
	Type         uint32
	Content      []byte
	MessageID    []byte // the sender's client message id
}

// Send is one SendMessage: the envelopes of one client message, stored
// atomically, at most once per (Sender, MessageID) within the dedupe
// window (Config.DedupeTTL). A sealed send has the zero Sender: its
// dedupe record names no sender.
type Send struct {
	Sender    DeviceAddr
	MessageID []byte
	Timestamp time.Time
	Envelopes []Envelope // ID tags filled by the caller, sequence by the mailbox
}

// AppendResult says what Append did.
type AppendResult struct {
	// Duplicate is true when a send with the same (Sender, MessageID) was
	// stored before; nothing was stored now and Timestamp is the original.
	Duplicate bool
	Timestamp time.Time
}

// Mailbox stores envelopes until their recipient acknowledges them.
//
// Semantics every backend must have (see relay/storetest):
//   - Append returns only once the envelopes are durable (a crash after it
//     returns loses nothing), and is idempotent on (Sender, MessageID)
//     for as long as the send's dedupe record lives (until ExpireSends
//     passes its timestamp). The record holds the key and the timestamp,
//     nothing else.
//     It fills the sequence half of each envelope's ID in place; sequence
//     numbers increase with commit order and are never reused.
//   - Fetch returns a device's envelopes with sequence > after, in append
//     order (so in order per sender), at most limit, skipping envelopes
//     older than notBefore.
//   - Delete removes envelopes only if they belong to the given device.
//   - Expire removes envelopes older than before and returns how many.
//   - ExpireSends removes the dedupe records of sends older than before
//     (minutes old: the relay keeps who sent what no longer than a retry
//     needs) and returns how many.
type Mailbox interface {
	Append(ctx context.Context, s *Send) (AppendResult, error)
	Fetch(ctx context.Context, dev DeviceAddr, after uint64, notBefore time.Time, limit int) ([]Envelope, error)
	Delete(ctx context.Context, dev DeviceAddr, ids []EnvelopeID) error
	Expire(ctx context.Context, before time.Time) (int64, error)
	ExpireSends(ctx context.Context, before time.Time) (int64, error)
	DeleteDevice(ctx context.Context, dev DeviceAddr) error
}

// Seq returns the mailbox sequence number encoded in id.
func (id EnvelopeID) Seq() uint64 {
	var s uint64
	for _, b := range id[:8] {
		s = s<<8 | uint64(b)
	}
	return s
}

// Code is the record of a seat: an invitation's (relay/invite.go) or the
// bootstrap code's. The seat token itself is never stored, only its
// SHA-256 hash.
type Code struct {
	ID      string // short public id for admins
	Hash    [32]byte
	Seats   int
	Used    int
	Created time.Time
	Expires time.Time // end of redemption and of the subscriptions it grants
	Revoked bool
	Note    string
}

// Account is a registered account.
type Account struct {
	ID          AccountID
	Username    string
	IdentityKey []byte
	Created     time.Time
	Expires     time.Time // subscription end
	Revoked     bool
}

// Device is a registered device.
type Device struct {
	Addr           DeviceAddr
	DeviceKey      []byte // Ed25519 public key
	RegistrationID uint32
	Name           string
	Created        time.Time
	LastSeen       time.Time
	Revoked        bool
}

// SignedPreKey is an opaque public key with its signature.
type SignedPreKey struct {
	ID        uint32
	PublicKey []byte
	Signature []byte
}

// PreKeys is an upload; nil/empty fields leave the stored ones unchanged.
type PreKeys struct {
	SignedPreKey    *SignedPreKey
	LastResortKyber *SignedPreKey
	OneTime         []SignedPreKey // EC, Signature empty
	OneTimeKyber    []SignedPreKey
}

// PreKeyCount reports what a device has left.
type PreKeyCount struct {
	OneTime, OneTimeKyber          int
	HasSignedPreKey, HasLastResort bool
}

// Bundle is what TakeBundle hands out for one device.
type Bundle struct {
	Device          Device
	SignedPreKey    *SignedPreKey
	OneTime         *SignedPreKey // nil when exhausted
	Kyber           *SignedPreKey
	KyberLastResort bool
}

// NewAccount is what Enroll creates.
type NewAccount struct {
	CodeHash    [32]byte
	ID          AccountID
	Username    string
	IdentityKey []byte
	Device      Device // Addr.Device is assigned
	PreKeys     PreKeys
	// LogLeaf is the key transparency binding (transparency.Binding) that a
	// Directory keeping a KeyLog appends in the same transaction (nil: none).
	LogLeaf []byte
	// Certificate is the account's identity certificate (orgcert), kept in
	// the same transaction as the account's org document of kind
	// RELAY_IDENTITY_CERTIFICATE (nil: none).
	Certificate []byte
	// OrgKey, set only by the bootstrap enrollment, is registered as the
	// organization's key in the same transaction; ErrConflict if one is
	// registered already.
	OrgKey []byte
}

// Revocation is an entry of the revocation log; Device 0 means the whole account.
type Revocation struct {
	Seq  int64
	Addr DeviceAddr
}

// Usage summarizes the relay for admins.
type Usage struct {
	Accounts, ActiveAccounts     int
	Devices, ActiveDevices       int
	Codes, SeatsTotal, SeatsUsed int
	QueuedEnvelopes              int64
	QueuedBytes                  int64
}

// Directory stores codes, accounts, devices, link tokens and prekeys.
// Errors: ErrNotFound, ErrConflict (username taken), ErrBadCode (unknown,
// revoked, expired or full code), ErrBadToken, ErrTooManyDevices.
type Directory interface {
	CreateCode(ctx context.Context, c Code) error
	Codes(ctx context.Context) ([]Code, error)
	RevokeCode(ctx context.Context, id string) error

	// Enroll atomically consumes a seat of the code, creates the account
	// and its device 1, and stores the prekeys.
	Enroll(ctx context.Context, a NewAccount, now time.Time) (Account, Device, error)
	CreateLinkToken(ctx context.Context, acct AccountID, hash [32]byte, expires time.Time) error
	// LinkDevice atomically consumes the token and adds a device.
	LinkDevice(ctx context.Context, tokenHash [32]byte, identityKey []byte, d Device, keys PreKeys, maxDevices int, now time.Time) (Account, Device, error)

	AccountByName(ctx context.Context, username string) (Account, error)
	AccountByID(ctx context.Context, id AccountID) (Account, error)
	Accounts(ctx context.Context) ([]Account, error)
	// Devices lists the devices of an account; revoked ones only if asked.
	Devices(ctx context.Context, acct AccountID, includeRevoked bool) ([]Device, error)
	Device(ctx context.Context, addr DeviceAddr) (Device, error)
	TouchDevice(ctx context.Context, addr DeviceAddr, t time.Time) error
	// Revoke marks a device (Device != 0) or an account and its devices
	// revoked and appends to the revocation log.
	Revoke(ctx context.Context, addr DeviceAddr, now time.Time) error
	RevocationsSince(ctx context.Context, seq int64) ([]Revocation, error)

	StorePreKeys(ctx context.Context, dev DeviceAddr, keys PreKeys) error
	CountPreKeys(ctx context.Context, dev DeviceAddr) (PreKeyCount, error)
	// TakeBundle atomically removes and returns one one-time EC prekey and
	// one one-time Kyber prekey (or the last-resort Kyber prekey).
	TakeBundle(ctx context.Context, dev DeviceAddr) (Bundle, error)

	Usage(ctx context.Context) (Usage, error)
}

// Store is a complete storage backend.
type Store interface {
	Directory
	Mailbox
	Close() error
}
