package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/session"
	"sotto/wire"
)

// account is this device's own record, sealed in the store.
type account struct {
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
	// Kyber prekey were made (Unix ms); they are rotated after rotateAfter.
	SignedPreKeyAt int64  `json:"signed_prekey_at"`
	LastResortID   uint32 `json:"last_resort_id"`
	// RelayCA and RelayPin are how this device verifies the relay's TLS
	// certificate, pinned from its invitation (or the approving device):
	// the CA (PEM) where it is not publicly trusted, and the SHA-256 of
	// the certificate's public key. Empty: the system's roots.
	RelayCA  []byte `json:"relay_ca,omitempty"`
	RelayPin []byte `json:"relay_pin,omitempty"`
}

// transport is how this device reaches its relay: its pinned TLS
// settings, over what the caller's options say (a command-line --ca or
// --pin does not replace what the device pinned; --insecure still
// applies).
func (a *account) transport(o transport.Options) (transport.Options, error) {
	return relayTransport(a.RelayCA, a.RelayPin, o)
}

// relayTransport layers pinned TLS settings over o.
func relayTransport(ca, pin []byte, o transport.Options) (transport.Options, error) {
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

// Prekey batch sizes.
const (
	initialPreKeys      = 100
	initialKyberPreKeys = 20
	// replenishBelow: when the relay holds fewer one-time prekeys than
	// this, a new batch is uploaded.
	replenishBelow = 20
	maxPreKeyID    = 0xFFFFFF // Signal's prekey ids are 24-bit
)

// String never shows the secrets.
func (a *account) String() string {
	return fmt.Sprintf("account(%s.%d)", a.Username, a.DeviceID)
}

// GoString never shows the secrets.
func (a *account) GoString() string { return a.String() }

func loadAccount(ctx context.Context, db kv) (*account, error) {
	b, err := db.Get(ctx, tblAccount, []byte("self"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, err
	}
	var a account
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("client: account record: %w", err)
	}
	return &a, nil
}

func saveAccount(ctx context.Context, db kv, a *account) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("client: account record: %w", err)
	}
	return db.Put(ctx, tblAccount, []byte("self"), b)
}

// newDeviceKeys generates what a new device needs apart from the account
// identity: the Ed25519 device key and a registration id.
func newDeviceKeys(a *account) error {
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

func (a *account) deviceKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(a.DeviceKey) }

// generatePreKeys makes and stores (in db) a batch of prekeys and returns
// their public halves for the relay. With first set it also makes the
// signed EC prekey and the last-resort Kyber prekey.
func generatePreKeys(ctx context.Context, db kv, a *account, identity *session.IdentityKeyPair, nEC, nKyber int, first bool, now time.Time) (*wire.PreKeys, error) {
	ss := &sigStore{db: db, self: a.Username, identity: identity, regID: a.RegistrationID}
	out := &wire.PreKeys{}
	if first {
		spk, err := session.GenerateSignedPreKey(rand.Reader, identity, a.SignedPreKeyID, now)
		if err != nil {
			return nil, fmt.Errorf("client: signed prekey: %w", err)
		}
		if err := ss.StoreSignedPreKey(ctx, spk.ID(), spk); err != nil {
			return nil, err
		}
		out.SignedPrekey = &wire.SignedPreKey{Id: spk.ID(), PublicKey: spk.PublicKey(), Signature: spk.Signature()}
		lr, err := session.GenerateKyberPreKey(rand.Reader, identity, a.NextKyberID, now)
		if err != nil {
			return nil, fmt.Errorf("client: kyber prekey: %w", err)
		}
		a.NextKyberID = nextID(a.NextKyberID)
		if err := ss.StoreKyberPreKey(ctx, lr.ID(), lr, true); err != nil {
			return nil, err
		}
		out.LastResortKyber = &wire.SignedPreKey{Id: lr.ID(), PublicKey: lr.PublicKey(), Signature: lr.Signature()}
		a.LastResortID, a.SignedPreKeyAt = lr.ID(), now.UnixMilli()
	}
	pks, err := session.GeneratePreKeys(rand.Reader, a.NextPreKeyID, nEC)
	if err != nil {
		return nil, fmt.Errorf("client: prekeys: %w", err)
	}
	for _, pk := range pks {
		if err := ss.StorePreKey(ctx, pk.ID(), pk); err != nil {
			return nil, err
		}
		out.OneTimePrekeys = append(out.OneTimePrekeys, &wire.PreKey{Id: pk.ID(), PublicKey: pk.PublicKey()})
		a.NextPreKeyID = nextID(pk.ID())
	}
	for range nKyber {
		k, err := session.GenerateKyberPreKey(rand.Reader, identity, a.NextKyberID, now)
		if err != nil {
			return nil, fmt.Errorf("client: kyber prekey: %w", err)
		}
		a.NextKyberID = nextID(a.NextKyberID)
		if err := ss.StoreKyberPreKey(ctx, k.ID(), k, false); err != nil {
			return nil, err
		}
		out.OneTimeKyberPrekeys = append(out.OneTimeKyberPrekeys, &wire.SignedPreKey{Id: k.ID(), PublicKey: k.PublicKey(), Signature: k.Signature()})
	}
	return out, nil
}

func nextID(id uint32) uint32 {
	if id >= maxPreKeyID {
		return 1
	}
	return id + 1
}
