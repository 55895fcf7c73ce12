package keylog

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/transparency"
	"sotto/wire"
)

// CheckServedKey verifies that the organization certified key for user
// (Config.Certify), that the relay's proof p shows (user, key) in the log
// under a head signed with the pinned key, moves the newest verified head
// forward, and refuses a superseded binding. Without a pinned log key it
// checks only the certificate. The account's own key needs no proof.
//
// db is the store, or a transaction the caller holds: then the relay may
// be asked for a consistency proof inside it (when p carries none from the
// newest verified head), and a binding proven in a transaction that rolls
// back is still remembered (Flush stores it). The client passes the store.
func (l *Log) CheckServedKey(ctx context.Context, relay Relay, db KV, user string, key, cert []byte, p *wire.TransparencyProof) error {
	if user == l.cfg.User {
		// The account's own key needs no proof: this device holds it. A
		// relay that logs another key for this name is the audit's
		// business (foreign-key); it must not cut the account's devices
		// off from each other.
		if !sameKey(key, l.cfg.IdentityKey()) {
			return fmt.Errorf("%w: %w", ErrKeyNotInLog, l.Raise(&Alarm{Kind: AlarmForeignKey, User: user,
				Detail: "the relay served an identity key for your own account that is not yours; it was not used"}))
		}
		return nil
	}
	if err := l.cfg.Certify(ctx, db, user, key, cert); err != nil {
		return err
	}
	pub, err := LogKey(ctx, db)
	if err != nil || pub == nil {
		return err
	}
	unproven := func(why string) error {
		return fmt.Errorf("%w: %w", ErrKeyNotInLog, l.Raise(&Alarm{Kind: AlarmUnprovenKey, User: user,
			Detail: fmt.Sprintf("the relay served an identity key for %s %s; it was not used", user, why),
			HeadA:  p.GetSignedHead(), Leaf: p.GetLeaf(), LeafIndex: p.GetLeafIndex()}))
	}
	if p == nil {
		return unproven("without a key transparency proof")
	}
	head, err := transparency.VerifyHead(pub, p.SignedHead)
	if err != nil {
		return unproven("with a tree head not signed by the pinned log key")
	}
	b, err := transparency.DecodeBinding(p.Leaf)
	if err != nil || b.Username != user || !bytes.Equal(b.IdentityKey, key) {
		return unproven("that differs from the binding it proves")
	}
	if len(b.Certificate) > 0 {
		// The log holds the certificate the binding was enrolled with: it
		// must hold too, so that what the log shows is what the
		// organization certified.
		if err := l.cfg.Certify(ctx, db, user, key, b.Certificate); err != nil {
			return err
		}
	}
	incl, err := transparency.DecodeProof(p.Inclusion)
	if err != nil {
		return unproven("with a malformed inclusion proof")
	}
	if err := transparency.VerifyInclusion(transparency.LeafHash(p.Leaf), p.LeafIndex, head.Size, incl, head.Root); err != nil {
		return unproven("that is not in the log")
	}
	if err := l.advanceHead(ctx, relay, db, head, p.KnownSize, p.Consistency, "the relay"); err != nil {
		return err
	}
	if err := l.noteWitness(ctx, db, head, p.Cosignatures); err != nil { // witness.go
		return err
	}
	return l.checkBinding(ctx, db, user, key, p)
}

// CheckLogged checks that key is the identity key the log binds to user:
// the key of a first message, or (changed) the new key of a known contact.
// It asks the relay for user's identity outside any transaction. It
// returns nil when proven, an error wrapping ErrSenderNotInLog (and, for a
// changed key, ErrKeyChangeNotInLog; an alarm is raised) when the message
// must be refused, and another error when the check could not be made.
// refusable reports which errors of Config.Certify refuse the message too.
// Alarms are queued; the caller flushes them.
func (l *Log) CheckLogged(ctx context.Context, relay Relay, user string, key []byte, changed bool, refusable func(error) bool) error {
	refuse := func(err error) error {
		if changed {
			return fmt.Errorf("%w: %w: %w", ErrKeyChangeNotInLog, ErrSenderNotInLog, err)
		}
		return fmt.Errorf("%w: %w", ErrSenderNotInLog, err)
	}
	what, kind := "a first message", AlarmUnloggedSender
	if changed {
		what, kind = "a message under a new identity key", AlarmUnloggedKeyChange
	}
	resp, err := relay.GetIdentity(ctx, user)
	if transport.Code(err) == wire.ErrorCode_NOT_FOUND {
		return refuse(l.Raise(&Alarm{Kind: kind, User: user,
			Detail: fmt.Sprintf("the relay delivered %s from %s but serves no identity key for %s; it was refused", what, user, user)}))
	}
	if err != nil {
		return fmt.Errorf("keylog: identity of %s: %w", user, err)
	}
	if err := l.CheckServedKey(ctx, relay, l.db, user, resp.IdentityKey, resp.IdentityCertificate, resp.Transparency); err != nil {
		if errors.Is(err, ErrKeyNotInLog) || errors.Is(err, ErrFork) || (refusable != nil && refusable(err)) {
			return refuse(err)
		}
		return err
	}
	if !sameKey(resp.IdentityKey, key) {
		p := resp.Transparency
		return refuse(l.Raise(&Alarm{Kind: kind, User: user,
			Detail: fmt.Sprintf("%s from %s came with an identity key that is not the one the key log holds for %s: someone else sent it in their name; it was refused", what, user, user),
			HeadA:  p.GetSignedHead(), Leaf: p.GetLeaf(), LeafIndex: p.GetLeafIndex()}))
	}
	return nil
}

// BoundRecord is the newest leaf this device verified for a user.
type BoundRecord struct {
	Index uint64 `json:"index"`
	Key   []byte `json:"key"`
}

// checkBinding refuses a key proven by a leaf older than the newest one
// this device verified for user when that one binds another key (or by the
// same leaf with another key: two histories), and remembers the newest
// leaf. It runs after p was verified. db may be a transaction that rolls
// back after the proof (a send stopped by the changed key it was served):
// the proven leaf is also queued for Flush, so that it is remembered all
// the same.
func (l *Log) checkBinding(ctx context.Context, db KV, user string, key []byte, p *wire.TransparencyProof) error {
	b, err := LoadBinding(ctx, db, user)
	if err != nil {
		return err
	}
	l.mu.Lock()
	if q, ok := l.bound[user]; ok && (b == nil || q.Index > b.Index) {
		b = &q // proven earlier in a transaction that rolled back
	}
	l.mu.Unlock()
	if b != nil {
		if p.LeafIndex <= b.Index && !sameKey(b.Key, key) {
			detail := fmt.Sprintf("the relay served an identity key for %s proven by key log leaf %d, but leaf %d binds another key to %s since: a superseded key; it was not used", user, p.LeafIndex, b.Index, user)
			if p.LeafIndex == b.Index {
				detail = fmt.Sprintf("the relay served an identity key for %s proven by key log leaf %d, but that leaf was proven to bind another key to %s before: two histories of the log; the key was not used", user, p.LeafIndex, user)
			}
			return fmt.Errorf("%w: %w", ErrKeyNotInLog, l.Raise(&Alarm{Kind: AlarmStaleBinding, User: user, Detail: detail,
				HeadA: p.GetSignedHead(), Leaf: p.GetLeaf(), LeafIndex: p.GetLeafIndex()}))
		}
		if p.LeafIndex <= b.Index {
			return nil
		}
	}
	rec := BoundRecord{Index: p.LeafIndex, Key: bytes.Clone(key)}
	l.mu.Lock()
	l.noteBinding(user, rec)
	l.mu.Unlock()
	return StoreBinding(ctx, db, user, rec)
}

// noteBinding queues rec, the newest leaf proven for user, for Flush. The
// caller holds l.mu.
func (l *Log) noteBinding(user string, rec BoundRecord) {
	if q, ok := l.bound[user]; ok && q.Index >= rec.Index {
		return
	}
	if l.bound == nil {
		l.bound = make(map[string]BoundRecord)
	}
	l.bound[user] = rec
}

// LoadBinding returns the newest leaf stored for user (nil: none).
func LoadBinding(ctx context.Context, db KV, user string) (*BoundRecord, error) {
	v, err := db.Get(ctx, Table, []byte(rowBoundPrefix+user))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var b BoundRecord
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("keylog: stored key log binding: %w", err)
	}
	return &b, nil
}

// StoreBinding stores rec for user unless a leaf as new is stored (in one
// transaction: a record never moves back). A history import uses it, so
// an import never lowers the stale-binding rule.
func StoreBinding(ctx context.Context, db KV, user string, rec BoundRecord) error {
	return atomically(ctx, db, func(tx KV) error {
		b, err := LoadBinding(ctx, tx, user)
		if err != nil || (b != nil && b.Index >= rec.Index) {
			return err
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Put(ctx, Table, []byte(rowBoundPrefix+user), v)
	})
}

// sameKey compares two serialized public keys in constant time.
func sameKey(a, b []byte) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}
