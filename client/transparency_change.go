package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/wire"
)

// Key changes (key transparency for known contacts). When a message from a
// known contact carries an identity key other than the one stored for them
// (a PreKey message after they re-enrolled, or a relay impersonating them),
// the receive transaction would replace the stored key. Before that is
// kept, the new key goes through the same check as a first contact's
// (transparency_first.go):
//  1. after decryption, vetChanged finds the users whose stored key the
//     transaction replaced and rolls it back (*needLookupError, changed),
//     so the old key, the old session and the message are untouched;
//  2. checkLogged asks the relay for the contact's identity, checks its
//     inclusion proof under a head consistent with the newest verified one
//     (checkServedKey), and requires the message's key to be the logged one;
//  3. the envelope is processed again with that key allowed: the contact is
//     then marked changed (unverified, sending blocked until accepted), as
//     any key change was before.
//
// A sealed message whose sender certificate names a known contact with
// another key (sealed.ErrIdentityMismatch) goes through the same lookup;
// once the certificate's key is proven, the message is opened again and
// must leave that key stored (its inner message is a PreKey message under
// the new key), or it is refused as before.
//
// Refusals and failures are handled as for a first contact: a key the log
// does not hold for the contact, a served key without a valid proof, or a
// fork refuses the message (ErrKeyChangeNotInLog and ErrSenderNotInLog, with
// an alarm): it is acknowledged and dropped, and the old key stays. A check
// that could not be made leaves it queued.
//
// checkServedKey also keeps, per user, the newest leaf it has seen proven
// for them (the "bound" records). A key proven only by an older leaf than
// one that already bound another key to the same user is a rollback to a
// superseded key (AlarmStaleBinding), refused everywhere a served key is
// checked: sends, refreshes, first contacts and key changes; so is the same
// leaf with another key. A leaf proven inside a transaction that then rolls
// back (a send stopped by the changed key it was served, which markChanged
// records outside it) is remembered all the same.

// AlarmUnloggedKeyChange is raised when a message from a known contact
// carries a new identity key that is not the one the key log holds for
// them: someone, likely the relay, sent it in their name. The message was
// refused and the old key kept.
const AlarmUnloggedKeyChange AlarmKind = "unlogged-key-change"

// AlarmStaleBinding is raised when the relay proves a key for a user with
// a log leaf older than one it already proved to bind another key to that
// user: it serves a superseded key. The key was not used.
const AlarmStaleBinding AlarmKind = "stale-binding"

// ErrKeyChangeNotInLog is returned with ErrSenderNotInLog (and reported in
// an EventError) when a known contact's message arrives under a changed
// identity key that the key transparency log is not proven to hold for
// them. The message is dropped and the previous key kept.
var ErrKeyChangeNotInLog = errors.New("client: a contact's changed identity key is not the one the key transparency log holds for them")

const ktBoundPrefix = "bound/"

// boundRecord is the newest leaf this device verified for a user.
type boundRecord struct {
	Index uint64 `json:"index"`
	Key   []byte `json:"key"`
}

// vetChanged runs in the receive transaction after decryption: users are
// those whose stored identity key the transaction replaced. A replacement
// not yet proven in the log rolls the transaction back for a lookup; a
// sealed message opened under a proven certificate key must have left that
// key stored. A nil f, or no pinned log key, lets everything through.
func (f *firstContact) vetChanged(ctx context.Context, db kv, users []string) error {
	if f == nil || (len(users) == 0 && len(f.certs) == 0) {
		return nil
	}
	pub, err := logKey(ctx, db)
	if err != nil || pub == nil {
		return err
	}
	for u, k := range f.certs {
		rec, err := loadIdentity(ctx, db, u)
		if err != nil {
			return err
		}
		if rec == nil || !sameKey(rec.Key, k) {
			// The certificate's key was proven, but the message did not
			// come under it (an old session): refused as before.
			return &SealedSenderError{Sender: u, Err: fmt.Errorf("%w (%s)", sealed.ErrIdentityMismatch, u)}
		}
	}
	users = slices.Clone(users)
	slices.Sort(users)
	for _, u := range slices.Compact(users) {
		rec, err := loadIdentity(ctx, db, u)
		if err != nil {
			return err
		}
		if rec == nil {
			continue
		}
		if k, ok := f.vetted[u]; ok && sameKey(k, rec.Key) {
			continue
		}
		return &needLookupError{user: u, key: bytes.Clone(rec.Key), changed: true}
	}
	return nil
}

// vetCertificate is called when a sealed message's certificate names user,
// a known contact, with key, which is not the key held for them: with a
// pinned log key it asks for a lookup (the key may have changed honestly);
// otherwise, or on the envelope's second reading, the message is refused
// as before (nil).
func (f *firstContact) vetCertificate(ctx context.Context, db kv, user string, key []byte) error {
	if f == nil || f.vetted != nil {
		return nil
	}
	pub, err := logKey(ctx, db)
	if err != nil || pub == nil {
		return err
	}
	return &needLookupError{user: user, key: bytes.Clone(key), changed: true, cert: true}
}

// allow records that l's key was proven in the log for l's user, for the
// envelope's second reading.
func (f *firstContact) allow(l *needLookupError) {
	f.vetted = map[string][]byte{l.user: l.key}
	if l.cert {
		f.certs = map[string][]byte{l.user: l.key}
	}
}

// sealedStores is what a sealed message is opened with: once a
// certificate's key was proven, it is the key held for its sender (the
// check that the message leaves it stored is vetChanged's).
func (f *firstContact) sealedStores(ss *sigStore) session.Stores {
	st := ss.stores()
	if f != nil && len(f.certs) > 0 {
		st.Identity = certIdentities{sigStore: ss, certs: f.certs}
	}
	return st
}

type certIdentities struct {
	*sigStore
	certs map[string][]byte
}

func (c certIdentities) Identity(ctx context.Context, addr session.Address) ([]byte, error) {
	if k, ok := c.certs[addr.Name]; ok {
		return k, nil
	}
	return c.sigStore.Identity(ctx, addr)
}

// checkLookup checks the key a rolled-back receive transaction asked about.
func (c *Client) checkLookup(ctx context.Context, conn *transport.Conn, l *needLookupError) error {
	return c.checkLogged(ctx, conn, l.user, l.key, l.changed)
}

// checkBinding refuses a key proven by a leaf older than the newest one
// this device verified for user when that one binds another key (or by the
// same leaf with another key: two histories), and remembers the newest
// leaf. It runs after p was verified. db may be a transaction that rolls
// back after the proof (a send stopped by the changed key it was served):
// the proven leaf is also queued for flushAlarms, so that it is remembered
// all the same.
func (c *Client) checkBinding(ctx context.Context, db kv, user string, key []byte, p *wire.TransparencyProof) error {
	b, err := loadBinding(ctx, db, user)
	if err != nil {
		return err
	}
	c.kt.mu.Lock()
	if q, ok := c.kt.bound[user]; ok && (b == nil || q.Index > b.Index) {
		b = &q // proven earlier in a transaction that rolled back
	}
	c.kt.mu.Unlock()
	if b != nil {
		if p.LeafIndex <= b.Index && !sameKey(b.Key, key) {
			detail := fmt.Sprintf("the relay served an identity key for %s proven by key log leaf %d, but leaf %d binds another key to %s since: a superseded key; it was not used", user, p.LeafIndex, b.Index, user)
			if p.LeafIndex == b.Index {
				detail = fmt.Sprintf("the relay served an identity key for %s proven by key log leaf %d, but that leaf was proven to bind another key to %s before: two histories of the log; the key was not used", user, p.LeafIndex, user)
			}
			return fmt.Errorf("%w: %w", ErrKeyNotInLog, c.alarm(&TransparencyAlarm{Kind: AlarmStaleBinding, User: user, Detail: detail,
				HeadA: p.GetSignedHead(), Leaf: p.GetLeaf(), LeafIndex: p.GetLeafIndex()}))
		}
		if p.LeafIndex <= b.Index {
			return nil
		}
	}
	rec := boundRecord{Index: p.LeafIndex, Key: bytes.Clone(key)}
	c.kt.mu.Lock()
	c.kt.noteBinding(user, rec)
	c.kt.mu.Unlock()
	return storeBinding(ctx, db, user, rec)
}

// noteBinding queues rec, the newest leaf proven for user, for
// flushAlarms. The caller holds k.mu.
func (k *ktState) noteBinding(user string, rec boundRecord) {
	if q, ok := k.bound[user]; ok && q.Index >= rec.Index {
		return
	}
	if k.bound == nil {
		k.bound = make(map[string]boundRecord)
	}
	k.bound[user] = rec
}

// loadBinding returns the newest leaf stored for user (nil: none).
func loadBinding(ctx context.Context, db kv, user string) (*boundRecord, error) {
	v, err := db.Get(ctx, tblTransparency, []byte(ktBoundPrefix+user))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var b boundRecord
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("client: stored key log binding: %w", err)
	}
	return &b, nil
}

// storeBinding stores rec for user unless a leaf as new is stored (in one
// transaction: a record never moves back).
func storeBinding(ctx context.Context, db kv, user string, rec boundRecord) error {
	return atomically(ctx, db, func(tx kv) error {
		b, err := loadBinding(ctx, tx, user)
		if err != nil || (b != nil && b.Index >= rec.Index) {
			return err
		}
		v, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return tx.Put(ctx, tblTransparency, []byte(ktBoundPrefix+user), v)
	})
}
