// Package sealedsender is a device's sealed sender (DESIGN §4): its one
// job is to keep who sends a message from the relay. It holds the profile
// key and its state across the account's devices (with the revocations of
// contacts' sealed access), the contacts' profile keys, the trust root
// pinned at enrollment, the sender certificate and the unauthenticated
// connection sealed sends go over; it decides the route of a send (sealed
// or not), and opens sealed envelopes on receipt.
//
// Every account has a random 32-byte profile key in the encrypted store;
// it rides inside the end-to-end Content of the first messages to each
// contact (and to the own other devices). The relay holds the access key
// derived from it. A device that holds a contact's profile key sends to
// that contact sealed: the Signal message is wrapped in libsignal's sealed
// sender with a sender certificate from the relay, and goes over a
// separate connection that never authenticates, presenting the contact's
// access key. Without the key it sends authenticated.
//
// On receipt the device unseals, validates the certificate against the
// trust root pinned at enrollment, and refuses (an *Error wrapping
// sealed.ErrIdentityMismatch, nothing shown) a certificate whose identity
// key is not the one it holds for the claimed sender; then the sender's
// session decrypts. The certificate itself proves nothing in Sotto's
// model: the relay can mint one for anybody.
//
// The package knows the store (client/store), the relay connection
// (client/transport), the content format (client/content) and the device
// lists (client/sessions); what it needs of the rest of the client (the
// organization's member access key) comes in Config.
package sealedsender

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"sotto/client/content"
	"sotto/client/sessions"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/keys"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/wire"
)

// Table is the store table of the sealed-sender state.
const Table = "sealed"

const (
	// certRefresh: a cached sender certificate is replaced this long
	// before it expires.
	certRefresh = time.Hour
	// ProfileKeySends: how many accepted sends to a contact carry the
	// profile key.
	ProfileKeySends = 3
)

// Rows of Table.
var (
	RowProfileKey = []byte("profile-key")
	keyTrustRoot  = []byte("trust-root")
	keyAccessSet  = []byte("access-key-uploaded")
	keyDowngrades = []byte("downgrades")
)

// ContactKeyRow is the row of Table holding user's profile key.
func ContactKeyRow(user string) []byte { return []byte("pk/" + user) }

// SentRow is the row of Table counting the accepted sends to user that
// carried the profile key.
func SentRow(user string) []byte { return []byte("pk-sent/" + user) }

// KV is what the package reads and writes: the store or one of its
// transactions.
type KV interface {
	Get(ctx context.Context, table string, key []byte) ([]byte, error)
	Put(ctx context.Context, table string, key, value []byte) error
	Delete(ctx context.Context, table string, key []byte) error
	List(ctx context.Context, table string) ([]store.Entry, error)
}

// Store is the device's store: a KV that runs transactions.
type Store interface {
	KV
	Update(ctx context.Context, fn func(tx *store.Tx) error) error
}

// KeyRelay is the relay request that sets the account's access key.
type KeyRelay interface {
	SetAccessKeyEpoch(ctx context.Context, key []byte, refuseMember bool, epoch uint64) error
}

// CertRelay is the relay request for a sender certificate.
type CertRelay interface {
	SenderCertificate(ctx context.Context) (*wire.SenderCertificateResponse, error)
}

// Relay is what the authenticated connection does for the sealed sender.
type Relay interface {
	KeyRelay
	CertRelay
}

// Error reports a sealed message that was refused: it did not unseal,
// its certificate did not validate, or (Err wraps
// sealed.ErrIdentityMismatch) it names a sender whose identity key is not
// the one this device holds for them — a forged sender. The message is
// dropped and never shown.
type Error struct {
	Sender string // as the certificate claims it, when it got that far
	Device uint32
	Err    error
}

func (e *Error) Error() string {
	if e.Sender == "" {
		return fmt.Sprintf("client: sealed message refused: %v", e.Err)
	}
	return fmt.Sprintf("client: sealed message claiming to be from %s.%d refused: %v", e.Sender, e.Device, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNoTrustRoot: the relay gave no sealed-sender trust root at
// enrollment.
var ErrNoTrustRoot = errors.New("client: no sealed-sender trust root pinned")

// ErrStaleProfileKey: the relay holds an access key of a newer epoch than
// this device's profile key; an own device changed it and this device has
// not heard of it yet (it will, with that device's next message to it).
var ErrStaleProfileKey = errors.New("client: the relay holds a newer profile key's access key; this device has not heard of it yet")

// Config configures a Sender.
type Config struct {
	Store     Store
	User      string // the own account
	DeviceID  uint32 // this device
	Identity  *session.IdentityKeyPair
	RelayURL  string            // where the sealed connection is dialed
	Transport transport.Options // how
	Now       func() time.Time
	Logger    *slog.Logger
	// MemberAccessKey is the organization's member access key, or nil:
	// it seals the first messages to a contact whose profile key is not
	// known yet.
	MemberAccessKey func(ctx context.Context) []byte
}

// Sender is a device's sealed sender. Its methods are safe for concurrent
// use.
type Sender struct {
	cfg Config

	mu   sync.Mutex
	conn *transport.Conn // never authenticated
	cert *sealed.SenderCertificate
}

// New makes the Sender of cfg.
func New(cfg Config) *Sender {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MemberAccessKey == nil {
		cfg.MemberAccessKey = func(context.Context) []byte { return nil }
	}
	return &Sender{cfg: cfg}
}

// PinTrustRoot keeps the trust root the relay gave at enrollment.
func PinTrustRoot(ctx context.Context, db KV, root []byte) error {
	if len(root) == 0 {
		return nil
	}
	if _, err := keys.ParsePublicKey(root); err != nil {
		return fmt.Errorf("client: sealed-sender trust root: %w", err)
	}
	return db.Put(ctx, Table, keyTrustRoot, root)
}

// TrustRoot is the pinned trust root (ErrNoTrustRoot: none).
func TrustRoot(ctx context.Context, db KV) (keys.PublicKey, error) {
	b, err := db.Get(ctx, Table, keyTrustRoot)
	if errors.Is(err, store.ErrNotFound) {
		return keys.PublicKey{}, ErrNoTrustRoot
	}
	if err != nil {
		return keys.PublicKey{}, err
	}
	return keys.ParsePublicKey(b)
}

// ProfileKey returns the account's profile key, making it on first use.
// Reading and making it is one transaction: two sends racing to make it
// (a delivery receipt and a message) must not each share and upload a key
// of their own, or the relay's access key would not match what a contact
// learned, and the contact's sealed sends would be refused.
func (s *Sender) ProfileKey(ctx context.Context) ([]byte, error) {
	var k []byte
	err := s.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		b, err := tx.Get(ctx, Table, RowProfileKey)
		if err == nil {
			k = b
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		k = make([]byte, sealed.ProfileKeySize)
		if _, err := rand.Read(k); err != nil {
			return fmt.Errorf("client: profile key: %w", err)
		}
		return tx.Put(ctx, Table, RowProfileKey, k)
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// ownProfileKey returns the profile key, or nil when there is none and
// this device should not make one: only the account's lowest-numbered
// known device makes it; the others adopt it from that device's syncs
// (Learn), so that one account does not end up with several.
func (s *Sender) ownProfileKey(ctx context.Context) ([]byte, error) {
	b, err := s.cfg.Store.Get(ctx, Table, RowProfileKey)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return b, err
	}
	ids, known, err := sessions.Devices(ctx, s.cfg.Store, s.cfg.User)
	if err != nil {
		return nil, err
	}
	if !known && s.cfg.DeviceID != 1 {
		return nil, nil // a linked device that has not heard from its siblings yet
	}
	for _, id := range ids {
		if id < s.cfg.DeviceID {
			return nil, nil
		}
	}
	return s.ProfileKey(ctx)
}

// ensureAccessKey uploads the access key of state st, once.
func (s *Sender) ensureAccessKey(ctx context.Context, conn KeyRelay, st *KeyState) error {
	ak, err := sealed.DeriveAccessKey(st.Key)
	if err != nil {
		return err
	}
	if done, err := s.cfg.Store.Get(ctx, Table, keyAccessSet); err == nil && bytes.Equal(done, accessKeyMark(ak, st.RefusesMember(), st.Epoch)) {
		return nil
	}
	return s.UploadAccessKey(ctx, conn, st)
}

// Attach puts the profile key into ct: on every send to the own other
// devices (with the profile key state), and while fewer than
// ProfileKeySends sends to a contact carrying it were accepted. It
// reports whether it did.
func (s *Sender) Attach(ctx context.Context, conn KeyRelay, to string, ct *content.Content) (bool, error) {
	if _, err := TrustRoot(ctx, s.cfg.Store); err != nil {
		return false, nil // this relay does no sealed sender
	}
	pk, err := s.ownProfileKey(ctx)
	if err != nil || pk == nil {
		return false, err
	}
	st, err := LoadState(ctx, s.cfg.Store)
	if err != nil {
		return false, err
	}
	// Whoever learns the key must be able to use it (and a key adopted
	// from an own device replaces this device's upload).
	if err := s.ensureAccessKey(ctx, conn, st); err != nil {
		s.cfg.Logger.Info("profile key not shared: access key not uploaded", "err", err)
		return false, nil
	}
	if to != s.cfg.User {
		if st.Revoked(to) {
			return false, nil // never to a revoked contact (revoke.go)
		}
		b, err := s.cfg.Store.Get(ctx, Table, SentRow(to))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		if len(b) > 0 && int(b[0]) >= ProfileKeySends {
			return false, nil
		}
	}
	ct.ProfileKey = st.Key
	if to == s.cfg.User {
		ct.ProfileKeyState = st.Message()
	}
	return true, nil
}

// Delivered counts an accepted send to `to` that carried the profile key.
func (s *Sender) Delivered(ctx context.Context, to string) {
	if to == s.cfg.User {
		return
	}
	// The store may have been locked (idle lock) or closed, or ctx ended
	// (the command is exiting), while the send was under way: that send
	// then goes uncounted and the next one carries the key once more,
	// which is harmless.
	n := byte(0)
	b, err := s.cfg.Store.Get(ctx, Table, SentRow(to))
	switch {
	case err == nil && len(b) > 0:
		n = b[0]
	case err == nil, errors.Is(err, store.ErrNotFound):
	case errors.Is(err, store.ErrLocked), ctx.Err() != nil:
		return
	default:
		// Not counted from zero again: the count stays as it is.
		s.cfg.Logger.Warn("profile key send count not read", "err", err)
		return
	}
	if err := s.cfg.Store.Put(ctx, Table, SentRow(to), []byte{n + 1}); err != nil && !errors.Is(err, store.ErrLocked) && ctx.Err() == nil {
		s.cfg.Logger.Warn("profile key send count not saved", "err", err)
	}
}

// Learned says what Learn did to the own profile key state, for the
// caller to act on after its transaction commits (AfterLearn).
type Learned struct {
	Changed bool // an own device's profile key state was merged
	Rotated bool // and the merge made a new key here, which the siblings must be told
}

// Learn keeps a profile key that arrived inside Content from `from`,
// inside the receive transaction tx. One from the own account (another
// device) is merged with this device's profile key state: the key of the
// higher epoch, or of one epoch the lower key, is adopted, so that all
// devices settle on one key; the new key is then shared with every
// contact again (its access key replaces the old one at the relay at
// once, AfterLearn).
func (s *Sender) Learn(ctx context.Context, tx KV, from string, ct *content.Content) (Learned, error) {
	pk := ct.GetProfileKey()
	if len(pk) != sealed.ProfileKeySize {
		return Learned{}, nil
	}
	if from != s.cfg.User {
		return Learned{}, tx.Put(ctx, Table, ContactKeyRow(from), pk)
	}
	local, err := LoadState(ctx, tx)
	if err != nil {
		return Learned{}, err
	}
	merged, rotate, err := Merge(local, StateOf(pk, ct.GetProfileKeyState()))
	if err != nil || Same(local, merged) {
		return Learned{}, err
	}
	if err := SaveState(ctx, tx, merged); err != nil {
		return Learned{}, err
	}
	if !bytes.Equal(local.Key, merged.Key) {
		// A new key is shared with every contact again.
		if err := resetSends(ctx, tx); err != nil {
			return Learned{}, err
		}
	}
	return Learned{Changed: true, Rotated: rotate}, nil
}

// resetSends forgets how often the profile key was sent to each contact:
// a new key is shared with every contact again.
func resetSends(ctx context.Context, tx KV) error {
	entries, err := tx.List(ctx, Table)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if bytes.HasPrefix(e.Key, []byte("pk-sent/")) {
			if err := tx.Delete(ctx, Table, e.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// accessKeyMark is what keyAccessSet records of an upload: the access key,
// whether the member key was refused with it, and the epoch.
func accessKeyMark(ak []byte, refuseMember bool, epoch uint64) []byte {
	b := append([]byte(nil), ak...)
	if refuseMember {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return binary.BigEndian.AppendUint64(b, epoch)
}

// UploadAccessKey sets the access key of state st at the relay, with its
// epoch and its refusal of the member key, and records the upload.
func (s *Sender) UploadAccessKey(ctx context.Context, conn KeyRelay, st *KeyState) error {
	ak, err := sealed.DeriveAccessKey(st.Key)
	if err != nil {
		return err
	}
	refuse := st.RefusesMember()
	if err := conn.SetAccessKeyEpoch(ctx, ak, refuse, st.Epoch); err != nil {
		if transport.Code(err) == wire.ErrorCode_CONFLICT {
			return fmt.Errorf("%w (epoch %d): %w", ErrStaleProfileKey, st.Epoch, err)
		}
		return fmt.Errorf("client: upload access key: %w", err)
	}
	return s.cfg.Store.Put(ctx, Table, keyAccessSet, accessKeyMark(ak, refuse, st.Epoch))
}

// UploadOwnAccessKey sets this account's access key at the relay, on
// every authenticated connect: it is one small idempotent request, and a
// relay that lost or altered the key (which turns every contact's sealed
// send into a refusal) is set right without waiting for anyone to notice.
func (s *Sender) UploadOwnAccessKey(ctx context.Context, conn KeyRelay) error {
	if _, err := TrustRoot(ctx, s.cfg.Store); err != nil {
		return nil // this relay does no sealed sender
	}
	st, err := LoadState(ctx, s.cfg.Store)
	if err != nil {
		return fmt.Errorf("client: profile key state: %w", err)
	}
	if st.Key == nil {
		return nil // none yet (it is made, and uploaded, before it is first shared)
	}
	return s.UploadAccessKey(ctx, conn, st)
}

// SendsSealed reports whether messages to user go sealed: this device
// pinned a sealed-sender trust root and holds user's profile key.
func (s *Sender) SendsSealed(ctx context.Context, user string) (bool, error) {
	if user == s.cfg.User {
		return false, nil
	}
	if _, err := TrustRoot(ctx, s.cfg.Store); err != nil {
		if errors.Is(err, ErrNoTrustRoot) {
			return false, nil
		}
		return false, err
	}
	_, err := s.cfg.Store.Get(ctx, Table, ContactKeyRow(user))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// NoteDowngrade counts a send that went out naming its sender after a
// sealed refusal.
func (s *Sender) NoteDowngrade(ctx context.Context) error {
	n, err := s.Downgrades(ctx)
	if err != nil {
		return err
	}
	return s.cfg.Store.Put(ctx, Table, keyDowngrades, binary.BigEndian.AppendUint64(nil, n+1))
}

// Downgrades is how many messages this device sent naming their sender
// after the relay refused to deliver them sealed.
func (s *Sender) Downgrades(ctx context.Context) (uint64, error) {
	b, err := s.cfg.Store.Get(ctx, Table, keyDowngrades)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("client: sealed downgrade count: %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
