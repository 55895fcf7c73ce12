package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"sotto/client/content"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/transparency"
	"sotto/wire"
)

// Key transparency (DESIGN §5). The relay logs every (username, identity
// key) binding in an append-only Merkle log and signs its head. This client
//   - pins the log's public key at enrollment (or linking);
//   - uses an identity key it is served for a new session only with a valid
//     inclusion proof of exactly that binding;
//   - accepts a first message from a new contact only when its identity key
//     is the one the log holds for the sender (transparency_first.go), and
//     a known contact's changed key likewise (transparency_change.go);
//   - refuses a key proven by an older leaf than one it verified binding
//     another key to the same user (a superseded key served again);
//   - keeps the newest verified head and checks that every newer head it
//     sees extends it (consistency proofs);
//   - audits the log: reads every new leaf, alarms on a binding of its own
//     username to a key that is not its own, and checks the leaves hash to
//     the signed head;
//   - gossips its newest head to its contacts inside end-to-end Content and
//     checks theirs against its own, so a relay that shows different views
//     to different users (a fork) is caught.
// What it cannot catch: a relay that lies at enrollment (a wrong log key is
// pinned) is found only when gossip or an out-of-band comparison of the log
// key disagrees; a relay can withhold or delay leaves and heads.

const (
	tblTransparency = "transparency"
	ktLogKey        = "log-key"
	ktHead          = "head"  // newest verified transparency.SignedHead
	ktAudit         = "audit" // transparency.Frontier of the audited leaves
	ktAlarmPrefix   = "alarm/"
	ktAlarmsDropped = "alarms-dropped" // how many alarms were dropped (decimal)

	// Stored alarms are bounded, so that a relay provoking alarms cannot
	// grow the device's storage without end: the first alarmsKeepFirst
	// (the evidence of the first incident is never dropped) and the newest
	// alarmsKeepNewest are kept, and the ones in between are counted.
	alarmsKeepFirst  = 16
	alarmsKeepNewest = 240
	maxStoredAlarms  = alarmsKeepFirst + alarmsKeepNewest

	auditBatch    = 1000
	auditInterval = 15 * time.Minute
)

// EventTransparencyAlarm reports a key transparency alarm: Event.Err is the
// *TransparencyAlarm, Event.User the user it concerns.
const EventTransparencyAlarm EventKind = 200 // 100-199: organization events (orgctl.go)

// AlarmKind says what a key transparency alarm found.
type AlarmKind string

// Kinds of alarms.
const (
	// AlarmFork: two signed heads that cannot both be honest (same size,
	// different roots, or no valid consistency proof between them).
	AlarmFork AlarmKind = "fork"
	// AlarmForeignKey: the log binds this account's username to an
	// identity key that is not the account's.
	AlarmForeignKey AlarmKind = "foreign-key"
	// AlarmUnprovenKey: the relay served an identity key without a valid
	// proof that the log holds it; the key was not used.
	AlarmUnprovenKey AlarmKind = "unproven-key"
	// AlarmBadLog: leaves served for an audit do not hash to the head.
	AlarmBadLog AlarmKind = "bad-log"
	// AlarmLogKeyMismatch: a contact gossiped a head that the pinned log
	// key did not sign: one of the two devices was given another log key
	// (a relay lying at enrollment shows up here).
	AlarmLogKeyMismatch AlarmKind = "log-key-mismatch"
)

// TransparencyAlarm is evidence that the relay misbehaved. HeadA and HeadB
// are the signed heads involved (encoded transparency.SignedHead), Leaf the
// offending binding.
type TransparencyAlarm struct {
	Time      time.Time `json:"time"`
	Kind      AlarmKind `json:"kind"`
	User      string    `json:"user,omitempty"`
	Detail    string    `json:"detail"`
	HeadA     []byte    `json:"head_a,omitempty"`
	HeadB     []byte    `json:"head_b,omitempty"`
	Leaf      []byte    `json:"leaf,omitempty"`
	LeafIndex uint64    `json:"leaf_index,omitempty"`
}

func (a *TransparencyAlarm) Error() string {
	return fmt.Sprintf("client: KEY TRANSPARENCY ALARM (%s): %s", a.Kind, a.Detail)
}

// ErrKeyNotInLog is returned (wrapped with a *TransparencyAlarm) when the
// relay serves an identity key it does not prove is in its key log.
var ErrKeyNotInLog = errors.New("client: identity key not proven to be in the key transparency log")

// ErrFork is returned when a head does not extend the newest verified one.
var ErrFork = errors.New("client: the key transparency log forked")

// ktState is the in-memory part: alarms not yet stored (raised inside a
// store transaction that then rolled back) and the head last gossiped to
// each peer.
type ktState struct {
	mu        sync.Mutex
	pending   []*TransparencyAlarm
	gossiped  map[string]uint64
	inbox     []gossip
	strangers map[string]bool // peers already reported for a head under another key
	auditMu   sync.Mutex      // one audit at a time
	alarmSeq  int64
	dropped   uint64 // pending alarms dropped, not yet added to the stored count
	checked   int    // gossiped heads checked (for tests)
	audits    int    // audits finished (for tests)
	// toSiblings: foreign-key alarms of the last audit, to report to the
	// account's other devices (ownalarm.go).
	toSiblings []siblingAlarm
	// bound: the newest leaf proven per user, not yet known to be stored
	// (proven inside a store transaction that may roll back; stored by
	// flushAlarms, see checkBinding). An entry stays until flushAlarms has
	// committed it: checkBinding must see it all the while.
	bound map[string]boundRecord
}

type gossip struct {
	from string
	head []byte
}

func pinLogKey(ctx context.Context, db kv, key []byte) error {
	return pinKey(ctx, db, ktLogKey, "the relay's key log key", key)
}

// pinKey stores an Ed25519 public key under name in the transparency
// table (an empty key: nothing is stored).
func pinKey(ctx context.Context, db kv, name, what string, key []byte) error {
	if len(key) == 0 {
		return nil
	}
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("client: %s has %d bytes", what, len(key))
	}
	return db.Put(ctx, tblTransparency, []byte(name), key)
}

// pinnedKey returns the key pinKey stored under name (nil: none).
func pinnedKey(ctx context.Context, db kv, name string) (ed25519.PublicKey, error) {
	b, err := db.Get(ctx, tblTransparency, []byte(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(b), nil
}

// logKey returns the pinned log key, nil when none was pinned (a relay
// without a log, or a device enrolled before it had one).
func logKey(ctx context.Context, db kv) (ed25519.PublicKey, error) {
	return pinnedKey(ctx, db, ktLogKey)
}

func loadHead(ctx context.Context, db kv) (*transparency.SignedHead, error) {
	return loadStoredHead(ctx, db, ktHead, "key log head")
}

// loadStoredHead reads a signed head kept under name (nil: none).
func loadStoredHead(ctx context.Context, db kv, name, what string) (*transparency.SignedHead, error) {
	b, err := db.Get(ctx, tblTransparency, []byte(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	h, err := transparency.DecodeHead(b)
	if err != nil {
		return nil, fmt.Errorf("client: stored %s: %w", what, err)
	}
	return &h, nil
}

// LogPublicKey returns the pinned key of the relay's key transparency log
// (nil: none), for out-of-band comparison.
func (c *Client) LogPublicKey(ctx context.Context) ([]byte, error) { return logKey(ctx, c.db) }

// TransparencyHead returns the newest verified signed head (nil: none yet).
func (c *Client) TransparencyHead(ctx context.Context) (*transparency.SignedHead, error) {
	return loadHead(ctx, c.db)
}

// TransparencyAlarms returns the alarms kept, oldest first: the first
// alarmsKeepFirst ever raised and the newest ones (see
// TransparencyAlarmsDropped).
func (c *Client) TransparencyAlarms(ctx context.Context) ([]TransparencyAlarm, error) {
	c.flushAlarms(ctx)
	ents, err := c.db.List(ctx, tblTransparency)
	if err != nil {
		return nil, err
	}
	ents = alarmEntries(ents)
	var out []TransparencyAlarm
	for _, e := range ents {
		var a TransparencyAlarm
		if err := json.Unmarshal(e.Value, &a); err != nil {
			return nil, fmt.Errorf("client: stored alarm: %w", err)
		}
		out = append(out, a)
	}
	c.kt.mu.Lock()
	for _, a := range c.kt.pending { // could not be stored yet
		out = append(out, *a)
	}
	c.kt.mu.Unlock()
	return out, nil
}

// TransparencyAlarmsDropped returns how many alarms were dropped to bound
// the storage alarms take: raised after the first alarmsKeepFirst and
// before the newest ones kept.
func (c *Client) TransparencyAlarmsDropped(ctx context.Context) (uint64, error) {
	c.flushAlarms(ctx)
	n, err := droppedAlarms(ctx, c.db)
	c.kt.mu.Lock()
	n += c.kt.dropped // could not be stored yet
	c.kt.mu.Unlock()
	return n, err
}

// alarmEntries returns the stored alarms among ents, oldest first (their
// keys hold the time they were raised).
func alarmEntries(ents []store.Entry) []store.Entry {
	ents = slices.DeleteFunc(ents, func(e store.Entry) bool { return !bytes.HasPrefix(e.Key, []byte(ktAlarmPrefix)) })
	slices.SortFunc(ents, func(a, b store.Entry) int { return bytes.Compare(a.Key, b.Key) })
	return ents
}

func droppedAlarms(ctx context.Context, db kv) (uint64, error) {
	b, err := db.Get(ctx, tblTransparency, []byte(ktAlarmsDropped))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("client: stored count of dropped alarms: %w", err)
	}
	return n, nil
}

// trimAlarms deletes the stored alarms after the first alarmsKeepFirst and
// before the newest alarmsKeepNewest, and adds them (and extra, dropped
// before they were stored) to the stored count.
func trimAlarms(ctx context.Context, tx kv, extra uint64) error {
	ents, err := tx.List(ctx, tblTransparency)
	if err != nil {
		return err
	}
	ents = alarmEntries(ents)
	drop := uint64(0)
	if len(ents) > maxStoredAlarms {
		for _, e := range ents[alarmsKeepFirst : len(ents)-alarmsKeepNewest] {
			if err := tx.Delete(ctx, tblTransparency, e.Key); err != nil {
				return err
			}
			drop++
		}
	}
	if drop+extra == 0 {
		return nil
	}
	n, err := droppedAlarms(ctx, tx)
	if err != nil {
		return err
	}
	return tx.Put(ctx, tblTransparency, []byte(ktAlarmsDropped), []byte(strconv.FormatUint(n+drop+extra, 10)))
}

// alarm reports a to the UI at once and queues it for the store. The
// queue is bounded as the store is (it grows while the store fails).
func (c *Client) alarm(a *TransparencyAlarm) *TransparencyAlarm {
	a.Time = c.opts.Now()
	c.log.Error("key transparency alarm", "kind", string(a.Kind), "user", a.User, "detail", a.Detail)
	c.kt.mu.Lock()
	if len(c.kt.pending) >= maxStoredAlarms {
		c.kt.pending = slices.Delete(c.kt.pending, alarmsKeepFirst, alarmsKeepFirst+1)
		c.kt.dropped++
	}
	c.kt.pending = append(c.kt.pending, a)
	c.kt.mu.Unlock()
	c.emit(Event{Kind: EventTransparencyAlarm, User: a.User, Err: a})
	return a
}

// flushAlarms stores queued alarms and proven bindings; it must run
// outside a store transaction.
func (c *Client) flushAlarms(ctx context.Context) {
	// Evidence is kept even when the caller is being stopped.
	ctx = context.WithoutCancel(ctx)
	c.kt.mu.Lock()
	pending, dropped := c.kt.pending, c.kt.dropped
	c.kt.pending, c.kt.dropped = nil, 0
	// The bindings stay in c.kt.bound until they are committed: taken out
	// here, a checkBinding between now and the commit would find neither
	// them nor the stored ones and accept an older leaf binding another key.
	bound := maps.Clone(c.kt.bound)
	c.kt.mu.Unlock()
	if len(pending) == 0 && len(bound) == 0 && dropped == 0 {
		return
	}
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		for user, b := range bound {
			if err := storeBinding(ctx, tx, user, b); err != nil {
				return err
			}
		}
		for _, a := range pending {
			b, err := json.Marshal(a)
			if err != nil {
				return err
			}
			c.kt.mu.Lock()
			c.kt.alarmSeq++
			key := fmt.Sprintf("%s%020d-%06d", ktAlarmPrefix, a.Time.UnixNano(), c.kt.alarmSeq)
			c.kt.mu.Unlock()
			if err := tx.Put(ctx, tblTransparency, []byte(key), b); err != nil {
				return err
			}
		}
		if len(pending) == 0 && dropped == 0 {
			return nil
		}
		return trimAlarms(ctx, tx, dropped)
	})
	if err != nil {
		c.log.Error("key transparency alarms not stored", "err", err)
		c.kt.mu.Lock()
		c.kt.pending = append(pending, c.kt.pending...)
		c.kt.dropped += dropped
		for len(c.kt.pending) > maxStoredAlarms {
			c.kt.pending = slices.Delete(c.kt.pending, alarmsKeepFirst, alarmsKeepFirst+1)
			c.kt.dropped++
		}
		c.kt.mu.Unlock()
		return
	}
	c.kt.mu.Lock()
	for user, b := range bound {
		if q, ok := c.kt.bound[user]; ok && q.Index == b.Index {
			delete(c.kt.bound, user)
		}
	}
	c.kt.mu.Unlock()
}

// checkServedKey verifies that the organization certified key for user
// (cert, orgroots.go), that the relay's proof p shows (user, key) in the
// log under a head signed with the pinned key, and moves the newest
// verified head forward. Without a pinned log key it checks only the
// certificate.
func (c *Client) checkServedKey(ctx context.Context, conn *transport.Conn, db kv, user string, key, cert []byte, p *wire.TransparencyProof) error {
	if user == c.acct.Username {
		// The account's own key needs no proof: this device holds it. A
		// relay that logs another key for this name is the audit's
		// business (foreign-key); it must not cut the account's devices
		// off from each other.
		if !sameKey(key, c.IdentityKey()) {
			return fmt.Errorf("%w: %w", ErrKeyNotInLog, c.alarm(&TransparencyAlarm{Kind: AlarmForeignKey, User: user,
				Detail: "the relay served an identity key for your own account that is not yours; it was not used"}))
		}
		return nil
	}
	if err := c.checkCertified(ctx, db, user, key, cert); err != nil {
		return err
	}
	pub, err := logKey(ctx, db)
	if err != nil || pub == nil {
		return err
	}
	unproven := func(why string) error {
		return fmt.Errorf("%w: %w", ErrKeyNotInLog, c.alarm(&TransparencyAlarm{Kind: AlarmUnprovenKey, User: user,
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
		if err := c.checkCertified(ctx, db, user, key, b.Certificate); err != nil {
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
	if err := c.advanceHead(ctx, conn, db, head, p.KnownSize, p.Consistency, "the relay"); err != nil {
		return err
	}
	if err := c.noteWitness(ctx, db, head, p.Cosignatures); err != nil { // witness.go
		return err
	}
	return c.checkBinding(ctx, db, user, key, p) // transparency_change.go
}

// advanceHead checks that head and the newest verified head are consistent
// and keeps the larger. cons, when not empty, is the relay's proof from
// knownSize to head.Size; otherwise the relay is asked for one.
//
// db may be the store itself (not a transaction): the relay is then asked
// while other calls (the audit, gossip) may move the stored head. The new
// head is saved only if the stored one is still the one it was checked
// against (in one transaction); otherwise it is checked again against the
// head now stored, so the stored head only ever moves forward along one
// consistent log.
func (c *Client) advanceHead(ctx context.Context, conn *transport.Conn, db kv, head transparency.SignedHead, knownSize uint64, cons [][]byte, source string) error {
	for range 8 {
		old, err := loadHead(ctx, db)
		if err != nil {
			return err
		}
		if old != nil {
			larger, err := c.checkHeads(ctx, conn, old, head, knownSize, cons, source)
			if err != nil || !larger {
				return err
			}
		}
		saved, err := saveHead(ctx, db, old, head)
		if err != nil || saved {
			return err
		}
	}
	return fmt.Errorf("client: key log head: the stored head kept moving while %s's was checked", source)
}

// checkHeads checks that head and old (the stored head) are consistent
// and reports whether head is the larger.
func (c *Client) checkHeads(ctx context.Context, conn *transport.Conn, old *transparency.SignedHead, head transparency.SignedHead, knownSize uint64, cons [][]byte, source string) (bool, error) {
	fork := func(detail string) error {
		return fmt.Errorf("%w: %w", ErrFork, c.alarm(&TransparencyAlarm{Kind: AlarmFork, User: c.acct.Username,
			Detail: detail, HeadA: old.Encode(), HeadB: head.Encode()}))
	}
	small, large := old, &head
	if head.Size < old.Size {
		small, large = &head, old
	}
	switch {
	case small.Size == large.Size:
		if small.Root != large.Root {
			return false, fork(fmt.Sprintf("two signed heads of size %d with different roots (the newer from %s)", head.Size, source))
		}
		return false, nil
	case small.Size == 0:
	default:
		var proof [][]byte
		if large == &head && knownSize == old.Size && len(cons) > 0 {
			proof = cons
		} else {
			r, err := conn.TransparencyConsistency(ctx, small.Size, large.Size)
			switch transport.Code(err) {
			case wire.ErrorCode_OK:
				proof = r.Proof
			case wire.ErrorCode_BAD_REQUEST, wire.ErrorCode_NOT_FOUND:
				return false, fork(fmt.Sprintf("the relay refuses a consistency proof between heads of size %d and %d it signed (%v)", small.Size, large.Size, err))
			default:
				return false, fmt.Errorf("client: key log consistency: %w", err)
			}
		}
		p, err := transparency.DecodeProof(proof)
		if err != nil || transparency.VerifyConsistency(small.Size, large.Size, small.Root, large.Root, p) != nil {
			return false, fork(fmt.Sprintf("the key log head of size %d (from %s) does not extend the one of size %d", large.Size, source, small.Size))
		}
	}
	return large == &head, nil
}

// saveHead stores head as the newest verified head if the stored one is
// still prev (nil: none), and reports whether it did.
func saveHead(ctx context.Context, db kv, prev *transparency.SignedHead, head transparency.SignedHead) (bool, error) {
	saved := false
	err := atomically(ctx, db, func(tx kv) error {
		cur, err := loadHead(ctx, tx)
		if err != nil {
			return err
		}
		if (cur == nil) != (prev == nil) || (cur != nil && !bytes.Equal(cur.Encode(), prev.Encode())) {
			return nil // moved meanwhile
		}
		saved = true
		return tx.Put(ctx, tblTransparency, []byte(ktHead), head.Encode())
	})
	return saved && err == nil, err
}

// atomically runs fn in a transaction of its own when db is the store,
// and in db when it already is one.
func atomically(ctx context.Context, db kv, fn func(tx kv) error) error {
	if s, ok := db.(*store.Store); ok {
		return s.Update(ctx, func(tx *store.Tx) error { return fn(tx) })
	}
	return fn(db)
}

// attachHead puts the newest verified head into ct on the first message to
// to since the client started and whenever the head changed since.
func (c *Client) attachHead(ctx context.Context, to string, ct *content.Content) {
	head, err := loadHead(ctx, c.db)
	if err != nil {
		return
	}
	if head == nil {
		// A new device: get a first head to gossip.
		if head, err = c.fetchHead(ctx); err != nil || head == nil {
			return
		}
	}
	c.kt.mu.Lock()
	defer c.kt.mu.Unlock()
	if c.kt.gossiped == nil {
		c.kt.gossiped = make(map[string]uint64)
	}
	if sent, ok := c.kt.gossiped[to]; ok && sent == head.Size {
		return
	}
	c.kt.gossiped[to] = head.Size
	ct.TransparencyHead = head.Encode()
}

// fetchHead asks the relay for its newest head and verifies it (nil: no
// pinned log key).
func (c *Client) fetchHead(ctx context.Context) (*transparency.SignedHead, error) {
	pub, err := logKey(ctx, c.db)
	if err != nil || pub == nil {
		return nil, err
	}
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	r, err := conn.TransparencyHead(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: key log head: %w", err)
	}
	head, err := transparency.VerifyHead(pub, r.SignedHead)
	if err != nil {
		return nil, fmt.Errorf("client: key log head: %w", err)
	}
	err = c.db.Update(ctx, func(tx *store.Tx) error {
		return c.advanceHead(ctx, conn, tx, head, 0, nil, "the relay")
	})
	if err == nil {
		err = c.acceptWitnessed(ctx, conn, head, r) // witness.go
	}
	c.flushAlarms(ctx)
	if err != nil {
		return nil, err
	}
	return loadHead(ctx, c.db)
}

// noteGossip queues a head received from a peer (inside the receive
// transaction); checkGossip checks the queue once the transaction is done.
func (c *Client) noteGossip(from string, head []byte) {
	if len(head) == 0 || from == "" {
		return
	}
	c.kt.mu.Lock()
	if len(c.kt.inbox) < 64 {
		c.kt.inbox = append(c.kt.inbox, gossip{from: from, head: bytes.Clone(head)})
	}
	c.kt.mu.Unlock()
}

// checkGossip checks the heads peers sent against the newest verified one.
func (c *Client) checkGossip(ctx context.Context, conn *transport.Conn) {
	c.kt.mu.Lock()
	inbox := c.kt.inbox
	c.kt.inbox = nil
	c.kt.mu.Unlock()
	if len(inbox) == 0 {
		return
	}
	pub, err := logKey(ctx, c.db)
	if err != nil || pub == nil {
		return
	}
	for _, g := range inbox {
		head, err := transparency.VerifyHead(pub, g.head)
		if err != nil {
			// Not signed by our log key: the peer pinned another key (or
			// sends garbage). Reported once per peer.
			c.kt.mu.Lock()
			seen := c.kt.strangers[g.from]
			if c.kt.strangers == nil {
				c.kt.strangers = make(map[string]bool)
			}
			c.kt.strangers[g.from] = true
			c.kt.mu.Unlock()
			if !seen {
				c.alarm(&TransparencyAlarm{Kind: AlarmLogKeyMismatch, User: g.from, HeadB: g.head,
					Detail: fmt.Sprintf("%s sent a key log head that the log key pinned on this device did not sign: one of you was given another log key; compare `sotto keylog` with them out of band", g.from)})
			}
			continue
		}
		if cur, err := loadHead(ctx, c.db); err == nil && cur != nil && cur.Size == head.Size && cur.Root == head.Root {
			// The common case: the same head. Nothing to write.
			c.kt.mu.Lock()
			c.kt.checked++
			c.kt.mu.Unlock()
			continue
		}
		err = c.db.Update(ctx, func(tx *store.Tx) error {
			if err := c.advanceHead(ctx, conn, tx, head, 0, nil, "gossip from "+g.from); err != nil {
				return err
			}
			return c.noteWitness(ctx, tx, head, nil) // witness.go: gossip carries no cosignature
		})
		if err != nil && !errors.Is(err, ErrFork) {
			if ctx.Err() == nil && !errors.Is(err, store.ErrLocked) {
				c.log.Warn("gossiped key log head not checked", "from", g.from, "err", err)
			}
			continue
		}
		c.kt.mu.Lock()
		c.kt.checked++
		c.kt.mu.Unlock()
	}
	c.flushAlarms(ctx)
}

// AuditKeyLog reads the key log leaves appended since the last audit,
// alarms on any binding of this account's username to another identity
// key, and checks that the leaves hash to the relay's signed head. It
// returns how many leaves it read.
func (c *Client) AuditKeyLog(ctx context.Context) (int, error) {
	conn, err := c.connection()
	if err != nil {
		return 0, err
	}
	return c.auditAndReport(ctx, conn)
}

func (c *Client) audit(ctx context.Context, conn *transport.Conn) (int, error) {
	c.kt.auditMu.Lock()
	defer c.kt.auditMu.Unlock()
	defer func() {
		c.kt.mu.Lock()
		c.kt.audits++
		c.kt.mu.Unlock()
	}()
	defer c.flushAlarms(ctx)
	pub, err := logKey(ctx, c.db)
	if err != nil || pub == nil {
		return 0, err
	}
	var f transparency.Frontier
	switch b, err := c.db.Get(ctx, tblTransparency, []byte(ktAudit)); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return 0, err
	default:
		if f, err = transparency.DecodeFrontier(b); err != nil {
			return 0, fmt.Errorf("client: stored audit state: %w", err)
		}
	}
	r, err := conn.TransparencyHead(ctx)
	if err != nil {
		return 0, fmt.Errorf("client: key log head: %w", err)
	}
	head, err := transparency.VerifyHead(pub, r.SignedHead)
	if err != nil {
		return 0, fmt.Errorf("client: key log head: %w", err)
	}
	if err := c.db.Update(ctx, func(tx *store.Tx) error {
		return c.advanceHead(ctx, conn, tx, head, 0, nil, "the relay")
	}); err != nil {
		return 0, err
	}
	if err := c.acceptWitnessed(ctx, conn, head, r); err != nil { // witness.go
		return 0, err
	}
	if head.Size < f.Size {
		return 0, nil // an older head; the next audit goes on
	}
	own := c.IdentityKey()
	read := 0
	for f.Size < head.Size {
		n := min(uint64(auditBatch), head.Size-f.Size)
		lr, err := conn.TransparencyLeaves(ctx, f.Size, uint32(n))
		if err != nil {
			return read, fmt.Errorf("client: key log leaves: %w", err)
		}
		if len(lr.Leaves) == 0 || lr.Start != f.Size {
			return read, fmt.Errorf("client: key log leaves: the relay returned none from %d of %d", f.Size, head.Size)
		}
		for _, leaf := range lr.Leaves[:min(uint64(len(lr.Leaves)), n)] {
			idx := f.Size
			if b, err := transparency.DecodeBinding(leaf); err != nil {
				c.alarm(&TransparencyAlarm{Kind: AlarmBadLog, Detail: fmt.Sprintf("key log leaf %d is malformed", idx), Leaf: leaf, LeafIndex: idx, HeadA: head.Encode()})
			} else if b.Username == c.acct.Username && !bytes.Equal(b.IdentityKey, own) {
				c.alarm(&TransparencyAlarm{Kind: AlarmForeignKey, User: c.acct.Username, Leaf: leaf, LeafIndex: idx, HeadA: head.Encode(),
					Detail: fmt.Sprintf("the key log binds your username %q to an identity key that is not yours (leaf %d): someone can be shown a key that is not yours", b.Username, idx)})
				c.kt.mu.Lock()
				c.kt.toSiblings = append(c.kt.toSiblings, siblingAlarm{leaf: leaf, index: idx, head: head.Encode()})
				c.kt.mu.Unlock()
			}
			if err := f.Append(transparency.LeafHash(leaf)); err != nil {
				return read, err
			}
			read++
		}
		// Keep what was read: the frontier holds every leaf's hash so far,
		// so the root check at the end still covers them all.
		if f.Size < head.Size {
			if err := c.db.Put(ctx, tblTransparency, []byte(ktAudit), f.Encode()); err != nil {
				return read, err
			}
		}
	}
	if f.Root() != head.Root {
		c.alarm(&TransparencyAlarm{Kind: AlarmBadLog, HeadA: head.Encode(),
			Detail: fmt.Sprintf("the key log leaves the relay served do not hash to its signed head of size %d", head.Size)})
		return read, fmt.Errorf("%w: audit root mismatch", ErrFork)
	}
	if err := c.db.Put(ctx, tblTransparency, []byte(ktAudit), f.Encode()); err != nil {
		return read, err
	}
	return read, nil
}

// auditAndReport audits, then tells the account's other devices what the
// audit found against this account (ownalarm.go), outside the audit's lock.
func (c *Client) auditAndReport(ctx context.Context, conn *transport.Conn) (int, error) {
	n, err := c.audit(ctx, conn)
	c.reportToSiblings(ctx)
	return n, err
}

// startAudit audits the key log on every connection, and every
// auditInterval after while the receive loop runs. A short connection (one
// send) may end before its audit does; what it read is kept, and the next
// connection goes on from there.
func (c *Client) startAudit(ctx context.Context, conn *transport.Conn, receive bool) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(auditInterval)
		defer t.Stop()
		for {
			if _, err := c.auditAndReport(ctx, conn); err != nil && ctx.Err() == nil {
				c.log.Warn("key log audit", "err", err)
			}
			if !receive {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}
