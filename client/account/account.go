// Package account is this device's own account record and its prekeys:
// its one job is the device's identity towards the relay and its
// contacts. It keeps the record sealed in the store (the account's name
// and id, the device's id, name, Ed25519 device key and registration id,
// the Signal identity key pair, the prekey counters, the relay's pinned
// TLS settings), makes a new device's keys, and makes, refills and
// rotates the prekeys the relay hands out to senders.
//
// It knows the store (client/store) and the relay's TLS options
// (client/transport); where prekeys are stored is the Signal store's
// business, reached through PreKeyStore. The enrollment and link flows,
// which talk to the relay, are the facade's (client/enroll.go).
package account

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"sotto/client/store"
	"sotto/client/transport"
)

// Table is the store table of the account record (its row "self").
const Table = "account"

// ErrNotEnrolled: the store holds no account record.
var ErrNotEnrolled = errors.New("client: this device is not enrolled")

// KV is the store or one of its transactions.
type KV interface {
	Get(ctx context.Context, table string, key []byte) ([]byte, error)
	Put(ctx context.Context, table string, key, value []byte) error
}

// Account is this device's own record, sealed in the store.
type Account struct {
	Relay          string `json:"relay"`
	Username       string `json:"username"`
	AccountID      []byte `json:"account_id"`
	DeviceID       uint32 `json:"device_id"`
	DeviceName     string `json:"device_name"`
	DeviceKey      []byte `json:"device_key"` // Ed25519 seed
	Identity       []byte `json:"identity"`   // serialized identity key pair
	RegistrationID uint32 `json:"registration_id"`
	NextPreKeyID   uint32 `json:"next_prekey_id"`
	NextKyberID    uint32 `json:"next_kyber_id"`
	SignedPreKeyID uint32 `json:"signed_prekey_id"`
	// SignedPreKeyAt is when the current signed prekey and last-resort
	// Kyber prekey were made (Unix ms); they are rotated after RotateAfter.
	SignedPreKeyAt int64  `json:"signed_prekey_at"`
	LastResortID   uint32 `json:"last_resort_id"`
	// RelayCA and RelayPin are how this device verifies the relay's TLS
	// certificate, pinned from its invitation (or the approving device):
	// the CA (PEM) where it is not publicly trusted, and the SHA-256 of
	// the certificate's public key. Empty: the system's roots.
	RelayCA  []byte `json:"relay_ca,omitempty"`
	RelayPin []byte `json:"relay_pin,omitempty"`
}

// Transport is how this device reaches its relay: its pinned TLS
// settings, over what the caller's options say (a command-line --ca or
// --pin does not replace what the device pinned; --insecure still
// applies).
func (a *Account) Transport(o transport.Options) (transport.Options, error) {
	return RelayTransport(a.RelayCA, a.RelayPin, o)
}

// RelayTransport layers pinned TLS settings over o.
func RelayTransport(ca, pin []byte, o transport.Options) (transport.Options, error) {
	if len(ca) == 0 && len(pin) == 0 {
		return o, nil
	}
	t, err := transport.NewOptions(ca, pin, o.Insecure)
	if err != nil {
		return o, fmt.Errorf("client: the relay's pinned TLS settings: %w", err)
	}
	if t.RootCAs == nil {
		t.RootCAs = o.RootCAs
	}
	t.HTTPHeader = o.HTTPHeader
	return t, nil
}

// String never shows the secrets.
func (a *Account) String() string {
	return fmt.Sprintf("account(%s.%d)", a.Username, a.DeviceID)
}

// GoString never shows the secrets.
func (a *Account) GoString() string { return a.String() }

// Load reads the account record (ErrNotEnrolled: none).
func Load(ctx context.Context, db KV) (*Account, error) {
	b, err := db.Get(ctx, Table, []byte("self"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	var a Account
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("client: account record: %w", err)
	}
	return &a, nil
}

// Save writes the account record.
func Save(ctx context.Context, db KV, a *Account) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("client: account record: %w", err)
	}
	return db.Put(ctx, Table, []byte("self"), b)
}

// NewDeviceKeys generates what a new device needs apart from the account
// identity: the Ed25519 device key and a registration id; the prekey
// counters start at 1.
func NewDeviceKeys(a *Account) error {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("client: device key: %w", err)
	}
	a.DeviceKey = priv.Seed()
	var b [2]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return fmt.Errorf("client: registration id: %w", err)
	}
	// libsignal's registration ids are 14-bit, non-zero.
	a.RegistrationID = uint32(binary.BigEndian.Uint16(b[:]))%16380 + 1
	a.NextPreKeyID, a.NextKyberID, a.SignedPreKeyID = 1, 1, 1
	return nil
}

// PrivateDeviceKey is the device's Ed25519 key, which signs its
// authentication to the relay and its own reports.
func (a *Account) PrivateDeviceKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(a.DeviceKey) }
