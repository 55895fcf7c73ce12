// Package keylog is a device's side of key transparency (DESIGN §5, §7):
// the relay logs every (username, identity key) binding in an append-only
// Merkle log and signs its head; this package keeps the device's view of
// that log and checks the relay against it.
//
// A Log owns the log's rows in the device's store (the pinned log and
// witness keys, the newest verified head, the witnessed head, the audit's
// frontier, the newest leaf proven per user, the alarms) and the in-memory
// state around them (alarms raised inside a transaction that rolled back,
// heads gossiped and received). It
//   - checks a served identity key's inclusion proof under a head signed
//     with the pinned key (CheckServedKey, CheckLogged);
//   - keeps the newest verified head and checks that every newer head it
//     sees extends it (consistency proofs);
//   - refuses a key proven by an older leaf than one that bound another key
//     to the same user (a superseded key served again);
//   - audits the log for bindings of the account's own name to another key
//     (Audit);
//   - gossips heads with contacts (AttachHead, NoteGossip, CheckGossip) so
//     that a relay showing different views to different users is caught;
//   - counts a head as witnessed only with a cosignature of the pinned
//     witness key, and alarms on a head left unwitnessed too long.
//
// It knows nothing of the client around it: it reads and writes its rows
// through KV, asks the relay through Relay, and reports alarms through a
// callback. Its relay requests are made outside any transaction of the
// store it is given; only a caller that hands CheckServedKey a transaction
// (the client never does) would have it ask the relay inside one.
package keylog

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"sotto/client/store"
	"sotto/wire"
)

// KV is the part of the device's store (or of one of its transactions)
// the log's rows are read and written with.
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

// Relay is what the log asks the relay.
type Relay interface {
	TransparencyHead(ctx context.Context) (*wire.TransparencyHead, error)
	TransparencyConsistency(ctx context.Context, first, second uint64) (*wire.TransparencyConsistency, error)
	TransparencyLeaves(ctx context.Context, start uint64, count uint32) (*wire.TransparencyLeaves, error)
	GetIdentity(ctx context.Context, username string) (*wire.IdentityResponse, error)
}

// Config is what a Log needs from the client around it.
type Config struct {
	// Store is the device's store (not a transaction).
	Store Store
	// User is the account's username.
	User string
	// IdentityKey returns the account's serialized public identity key.
	IdentityKey func() []byte
	// Certify checks that cert is the organization's certificate of key
	// for user (read with db); it raises its own alarm on failure.
	Certify func(ctx context.Context, db KV, user string, key, cert []byte) error
	// WitnessBound returns how long a head may stay unwitnessed.
	WitnessBound func(ctx context.Context) time.Duration
	// OnAlarm reports an alarm at once (it is stored later).
	OnAlarm func(*Alarm)
	Now     func() time.Time
	Logger  *slog.Logger
}

// Log is a device's view of the relay's key transparency log.
type Log struct {
	cfg Config
	db  Store

	mu        sync.Mutex
	pending   []*Alarm // raised, not yet stored
	gossiped  map[string]uint64
	inbox     []gossip
	strangers map[string]bool // peers already reported for a head under another key
	auditMu   sync.Mutex      // one audit at a time
	alarmSeq  int64
	dropped   uint64 // pending alarms dropped, not yet added to the stored count
	checked   int    // gossiped heads checked (for tests)
	audits    int    // audits finished (for tests)
	// siblings: foreign-key findings of the last audit, to report to the
	// account's other devices.
	siblings []SiblingAlarm
	// bound: the newest leaf proven per user, not yet known to be stored
	// (proven inside a store transaction that may roll back; stored by
	// Flush, see checkBinding). An entry stays until Flush has committed
	// it: checkBinding must see it all the while.
	bound map[string]BoundRecord
}

type gossip struct {
	from string
	head []byte
}

// New returns the Log of the device whose store and account cfg names.
func New(cfg Config) *Log {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnAlarm == nil {
		cfg.OnAlarm = func(*Alarm) {}
	}
	if cfg.IdentityKey == nil {
		cfg.IdentityKey = func() []byte { return nil }
	}
	if cfg.WitnessBound == nil {
		cfg.WitnessBound = func(context.Context) time.Duration { return DefaultWitnessBound }
	}
	return &Log{cfg: cfg, db: cfg.Store}
}

// Table is the store table that holds the log's rows.
const Table = "transparency"

const (
	rowLogKey        = "log-key"
	rowHead          = "head"  // newest verified transparency.SignedHead
	rowAudit         = "audit" // transparency.Frontier of the audited leaves
	rowAlarmPrefix   = "alarm/"
	rowAlarmsDropped = "alarms-dropped" // how many alarms were dropped (decimal)
	rowBoundPrefix   = "bound/"
	rowWitnessKey    = "witness-key"
	rowWitnessed     = "witnessed"   // the largest witnessed head (encoded transparency.SignedHead)
	rowUnwitnessed   = "unwitnessed" // unwitnessedRecord (JSON)
)

// Errors a caller branches on.
var (
	// ErrKeyNotInLog is returned (wrapped with an *Alarm) when the relay
	// serves an identity key it does not prove is in its key log.
	ErrKeyNotInLog = errors.New("keylog: identity key not proven to be in the key transparency log")
	// ErrFork is returned when a head does not extend the newest verified one.
	ErrFork = errors.New("keylog: the key transparency log forked")
	// ErrSenderNotInLog is returned (wrapped with an *Alarm, ErrKeyNotInLog
	// or ErrFork) when a first message from a user, or a known contact's
	// message under a changed key (then with ErrKeyChangeNotInLog too),
	// arrives under an identity key the log is not proven to hold for them.
	ErrSenderNotInLog = errors.New("keylog: a message's identity key is not the one the key transparency log holds for its sender")
	// ErrKeyChangeNotInLog is returned with ErrSenderNotInLog when a known
	// contact's message arrives under a changed identity key that the log
	// is not proven to hold for them.
	ErrKeyChangeNotInLog = errors.New("keylog: a contact's changed identity key is not the one the key transparency log holds for them")
)

// PinLogKey pins the log's public key (an empty key: nothing is stored).
func PinLogKey(ctx context.Context, db KV, key []byte) error {
	return pinKey(ctx, db, rowLogKey, "the relay's key log key", key)
}

// PinWitnessKey pins the org witness's Ed25519 public key (an empty key:
// no witness, nothing is stored).
func PinWitnessKey(ctx context.Context, db KV, key []byte) error {
	return pinKey(ctx, db, rowWitnessKey, "the key log witness key", key)
}

// LogKey returns the pinned log key, nil when none was pinned (a relay
// without a log, or a device enrolled before it had one).
func LogKey(ctx context.Context, db KV) (ed25519.PublicKey, error) {
	return pinnedKey(ctx, db, rowLogKey)
}

// WitnessKey returns the pinned witness key (nil: none pinned).
func WitnessKey(ctx context.Context, db KV) (ed25519.PublicKey, error) {
	return pinnedKey(ctx, db, rowWitnessKey)
}

// pinKey stores an Ed25519 public key under name (an empty key: nothing
// is stored).
func pinKey(ctx context.Context, db KV, name, what string, key []byte) error {
	if len(key) == 0 {
		return nil
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("keylog: %s has %d bytes", what, len(key))
	}
	return db.Put(ctx, Table, []byte(name), key)
}

// pinnedKey returns the key pinKey stored under name (nil: none).
func pinnedKey(ctx context.Context, db KV, name string) (ed25519.PublicKey, error) {
	b, err := db.Get(ctx, Table, []byte(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(b), nil
}

// atomically runs fn in a transaction of its own when db is a Store,
// and in db when it already is one.
func atomically(ctx context.Context, db KV, fn func(tx KV) error) error {
	if s, ok := db.(Store); ok {
		return s.Update(ctx, func(tx *store.Tx) error { return fn(tx) })
	}
	return fn(db)
}
