package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"sotto/client/keylog"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/signal/session"
	"sotto/transparency"
	"sotto/wire"
)

// ktRelay is a real relay with a key transparency log whose SQLite file
// the test can edit behind its back, as a hostile operator would.
type ktRelay struct {
	*testRelay
	dir  string
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey // the relay's log key: a test may sign as the relay
}

// startKTRelay starts it; opts may change the relay's configuration.
func startKTRelay(t *testing.T, opts ...func(*relay.Config)) *ktRelay {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	r := &testRelay{store: st}
	cfg := r.config()
	cfg.DirectoryCacheTTL = time.Nanosecond // see edits to the store at once
	cfg.LogKey = priv
	for _, o := range opts {
		o(&cfg)
	}
	r.serve(t, cfg)
	return &ktRelay{testRelay: r, dir: dir, pub: pub, priv: priv}
}

// serveOldLeaf makes the relay serve user's previous identity key, old,
// proven by the leaf that bound it: user's newest leaf is renamed away.
func (r *ktRelay) serveOldLeaf(t *testing.T, user string, old []byte) {
	t.Helper()
	r.exec(t, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`UPDATE keylog_leaves SET username = ? WHERE username = ? AND idx = (SELECT max(idx) FROM keylog_leaves WHERE username = ?)`, user+"-old", user, user); err != nil {
			return err
		}
		_, err := tx.Exec(`UPDATE accounts SET identity_key = ? WHERE username = ?`, old, user)
		return err
	})
}

// rewriteLeaf rewrites the relay's log behind its back (a split view): its
// leaves, one per user of users in order, are stored again with leaf idx
// binding users[idx] to another key, and its hashes recomputed.
func (r *ktRelay) rewriteLeaf(t *testing.T, idx int, users ...string) {
	t.Helper()
	leaves, err := r.store.LogLeaves(context.Background(), 0, len(users)+1)
	if err != nil || len(leaves) != len(users) {
		t.Fatalf("leaves %d %v", len(leaves), err)
	}
	forged, _ := (&transparency.Binding{Kind: transparency.KindAdd, Username: users[idx], IdentityKey: fakeIdentity(t), TimestampMS: 1}).Encode()
	leaves[idx] = forged
	r.exec(t, func(tx *sql.Tx) error { return r.rewriteLog(t, tx, leaves, users) })
}

// exec runs SQL on the relay's database through a connection of its own.
// certifyAll gives every account the relay serves a valid identity
// certificate from the organization's key for the key it now has: these
// tests play a relay whose every key the organization certified (an
// invitation holder's, or a compromised org key), so that what they see is
// the key log's defence alone. invite_test.go plays the relay without one.
func (r *ktRelay) certifyAll(tx *sql.Tx) error {
	rows, err := tx.Query(`SELECT username, identity_key FROM accounts`)
	if err != nil {
		return err
	}
	type acct struct {
		user string
		key  []byte
	}
	var all []acct
	for rows.Next() {
		var a acct
		if err := rows.Scan(&a.user, &a.key); err != nil {
			rows.Close()
			return err
		}
		all = append(all, a)
	}
	rows.Close()
	for _, a := range all {
		cert, err := r.ensureOrg().Certificate(a.user, a.key, time.Now())
		if err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO org_documents (kind, subject, doc) VALUES (?, ?, ?)
			ON CONFLICT (kind, subject) DO UPDATE SET doc = excluded.doc`, int32(wire.OrgDocumentKind_RELAY_IDENTITY_CERTIFICATE), a.user, cert); err != nil {
			return err
		}
	}
	return nil
}

// exec runs SQL on the relay's database through a connection of its own,
// then certifies every key (certifyAll).
func (r *ktRelay) exec(t *testing.T, fn func(tx *sql.Tx) error) {
	t.Helper()
	r.execRaw(t, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return r.certifyAll(tx)
	})
}

// execRaw is exec without the certificates: what the relay alone can do.
func (r *ktRelay) execRaw(t *testing.T, fn func(tx *sql.Tx) error) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(r.dir, sqlitestore.FileName)+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func alarmsOf(t *testing.T, c *Client) []TransparencyAlarm {
	t.Helper()
	a, err := c.TransparencyAlarms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func noAlarmEvents(t *testing.T, who string, events chan Event) {
	t.Helper()
	for {
		select {
		case e := <-events:
			if e.Kind == EventTransparencyAlarm {
				t.Fatalf("%s: unexpected alarm %v", who, e.Err)
			}
		default:
			return
		}
	}
}

// waitAudits waits until c finished n audits: the one a receiving client
// starts at connect must not run in the middle of a test's attack.
func waitAudits(t *testing.T, c *Client, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, done := c.keylog.Stats()
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d audits done, want %d", done, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fakeIdentity(t *testing.T) []byte {
	t.Helper()
	id, err := session.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id.PublicKey().Serialize()
}

// TestKeyTransparencyHonest: with an honest relay, keys are proven, heads
// move forward consistently, gossip is checked, audits pass, and nothing
// raises an alarm.
func TestKeyTransparencyHonest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", true)
	bob, bev := r.enroll(t, code, "bob", true)
	if k, err := alice.LogPublicKey(ctx); err != nil || !bytes.Equal(k, r.pub) {
		t.Fatalf("pinned log key %x, %v", k, err)
	}
	if _, err := alice.Send(ctx, "bob", "hello"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bev, EventMessage)
	if _, err := bob.Send(ctx, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, aev, EventMessage)
	carol, cev := r.enroll(t, code, "carol", true)
	if _, err := carol.Send(ctx, "alice", "hi alice"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, aev, EventMessage)
	for name, c := range map[string]*Client{"alice": alice, "bob": bob, "carol": carol} {
		if _, err := c.AuditKeyLog(ctx); err != nil {
			t.Fatalf("%s: audit: %v", name, err)
		}
		h, err := c.TransparencyHead(ctx)
		if err != nil || h == nil || h.Size != 3 {
			t.Fatalf("%s: head %+v, %v", name, h, err)
		}
		if a := alarmsOf(t, c); len(a) != 0 {
			t.Fatalf("%s: alarms %+v", name, a)
		}
	}
	// Gossip went both ways and was checked: alice got heads from bob and
	// carol, bob from alice.
	ac, _ := alice.keylog.Stats()
	bc, _ := bob.keylog.Stats()
	if ac < 2 || bc < 1 {
		t.Fatalf("gossiped heads checked: alice %d, bob %d", ac, bc)
	}
	noAlarmEvents(t, "alice", aev)
	noAlarmEvents(t, "bob", bev)
	noAlarmEvents(t, "carol", cev)
}

// TestKeyTransparencySwappedKeyRefused: the relay serves another identity
// key for bob without logging it; alice refuses to use it and alarms.
func TestKeyTransparencySwappedKeyRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", true)
	r.enroll(t, code, "bob", true)
	fake := fakeIdentity(t)
	r.exec(t, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE accounts SET identity_key = ? WHERE username = 'bob'`, fake)
		return err
	})
	_, err := alice.Send(ctx, "bob", "for bob only")
	if !errors.Is(err, ErrKeyNotInLog) {
		t.Fatalf("send with a swapped key: %v", err)
	}
	if err := alice.RefreshIdentity(ctx, "bob"); !errors.Is(err, ErrKeyNotInLog) {
		t.Fatalf("refresh with a swapped key: %v", err)
	}
	e := waitEvent(t, aev, EventTransparencyAlarm)
	var a *TransparencyAlarm
	if !errors.As(e.Err, &a) || a.Kind != AlarmUnprovenKey || a.User != "bob" {
		t.Fatalf("alarm %v", e.Err)
	}
	if got := alarmsOf(t, alice); len(got) != 2 || got[0].Kind != AlarmUnprovenKey {
		t.Fatalf("stored alarms %+v", got)
	}
	if h, err := alice.History(ctx, "bob", 0); err != nil || len(h) != 0 {
		t.Fatalf("a message went out: %+v %v", h, err)
	}
}

// TestKeyTransparencyAuditFindsKeyForMe: the relay logs a key for bob that
// is not bob's (so others accept it); bob's audit finds it.
func TestKeyTransparencyAuditFindsKeyForMe(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	bob, bev := r.enroll(t, code, "bob", true)
	if _, err := bob.AuditKeyLog(ctx); err != nil {
		t.Fatal(err)
	}
	waitAudits(t, bob, 2)
	if a := alarmsOf(t, bob); len(a) != 0 {
		t.Fatalf("alarms before the attack: %+v", a)
	}
	fake := fakeIdentity(t)
	leaf, err := (&transparency.Binding{Kind: transparency.KindReplace, Username: "bob", IdentityKey: fake, TimestampMS: time.Now().UnixMilli()}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.AppendLogLeaf(ctx, "bob", leaf); err != nil {
		t.Fatal(err)
	}
	r.exec(t, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE accounts SET identity_key = ? WHERE username = 'bob'`, fake)
		return err
	})
	// Alice is served the logged key and accepts its proof (her safety
	// number with bob changes: the usual warning, nothing more)...
	if err := alice.RefreshIdentity(ctx, "bob"); err != nil {
		t.Fatalf("alice refreshes bob: %v", err)
	}
	if a := alarmsOf(t, alice); len(a) != 0 {
		t.Fatalf("alice: %+v", a)
	}
	// ...and bob's audit catches the key that is not his.
	n, err := bob.AuditKeyLog(ctx)
	if err != nil || n != 1 {
		t.Fatalf("audit read %d leaves: %v", n, err)
	}
	e := waitEvent(t, bev, EventTransparencyAlarm)
	var a *TransparencyAlarm
	if !errors.As(e.Err, &a) || a.Kind != AlarmForeignKey || a.LeafIndex != 2 || !bytes.Equal(a.Leaf, leaf) {
		t.Fatalf("alarm %v", e.Err)
	}
	if got := alarmsOf(t, bob); len(got) != 1 || got[0].Kind != AlarmForeignKey {
		t.Fatalf("stored alarms %+v", got)
	}
	// The next audit has nothing new to say.
	if n, err := bob.AuditKeyLog(ctx); err != nil || n != 0 || len(alarmsOf(t, bob)) != 1 {
		t.Fatalf("second audit: %d %v", n, err)
	}
}

// TestKeyTransparencyForkCaughtByGossip: the relay rewrites its log (bob's
// binding) after alice saw it; carol, enrolled later, only ever sees the
// rewritten log. The head carol gossips to alice does not extend alice's:
// alice alarms with both signed heads as evidence.
func TestKeyTransparencyForkCaughtByGossip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", true)
	r.enroll(t, code, "bob", false)
	if _, err := alice.AuditKeyLog(ctx); err != nil {
		t.Fatal(err)
	}
	waitAudits(t, alice, 2)
	before, _ := alice.TransparencyHead(ctx)
	if before == nil || before.Size != 2 {
		t.Fatalf("alice's head %+v", before)
	}

	// Rewrite history: bob's leaf now binds another key.
	r.rewriteLeaf(t, 1, "alice", "bob")

	carol, cev := r.enroll(t, code, "carol", true)
	if _, err := carol.AuditKeyLog(ctx); err != nil {
		t.Fatal(err)
	}
	if a := alarmsOf(t, carol); len(a) != 0 {
		t.Fatalf("carol sees a consistent (forked) log: %+v", a)
	}
	if _, err := carol.Send(ctx, "alice", "hello alice"); err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, aev, EventTransparencyAlarm)
	var a *TransparencyAlarm
	if !errors.As(e.Err, &a) || a.Kind != AlarmFork {
		t.Fatalf("alarm %v", e.Err)
	}
	ha, err1 := transparency.VerifyHead(r.pub, a.HeadA)
	hb, err2 := transparency.VerifyHead(r.pub, a.HeadB)
	if err1 != nil || err2 != nil || ha.Size != 2 || hb.Size != 3 || ha.Root != before.Root {
		t.Fatalf("evidence: %+v %v / %+v %v", ha, err1, hb, err2)
	}
	// The evidence is kept, and alice keeps the head she had verified.
	if got := alarmsOf(t, alice); len(got) != 1 || got[0].Kind != AlarmFork {
		t.Fatalf("stored alarms %+v", got)
	}
	if h, _ := alice.TransparencyHead(ctx); h.Size != 2 || h.Root != before.Root {
		t.Fatalf("alice moved to the forked head: %+v", h)
	}
	noAlarmEvents(t, "carol", cev)
}

// TestKeyTransparencySameSizeFork: a head of the same size as alice's but
// with another root, signed with the log key, reaches alice by gossip: the
// two signed heads are a fork in themselves, with no relay round trip.
func TestKeyTransparencySameSizeFork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", true)
	r.enroll(t, code, "bob", false)
	if _, err := alice.AuditKeyLog(ctx); err != nil {
		t.Fatal(err)
	}
	waitAudits(t, alice, 2)
	mine, _ := alice.TransparencyHead(ctx)
	other := mine.Root
	other[0] ^= 1
	forged := transparency.SignHead(r.priv, mine.Size, other, time.Now().UnixMilli())
	// A head signed by another key: bob pinned another log key (a relay
	// lying at enrollment); reported once.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	junk := transparency.SignHead(stranger, mine.Size, other, 1)
	conn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		alice.keylog.NoteGossip("bob", junk.Encode())
		alice.keylog.CheckGossip(ctx, conn)
	}
	e := waitEvent(t, aev, EventTransparencyAlarm)
	var a *TransparencyAlarm
	if !errors.As(e.Err, &a) || a.Kind != AlarmLogKeyMismatch || a.User != "bob" {
		t.Fatalf("alarm %v", e.Err)
	}
	if got := alarmsOf(t, alice); len(got) != 1 {
		t.Fatalf("stored alarms %+v", got)
	}
	alice.keylog.NoteGossip("bob", forged.Encode())
	alice.keylog.CheckGossip(ctx, conn)
	e = waitEvent(t, aev, EventTransparencyAlarm)
	if !errors.As(e.Err, &a) || a.Kind != AlarmFork || !bytes.Equal(a.HeadB, forged.Encode()) || !bytes.Equal(a.HeadA, mine.Encode()) {
		t.Fatalf("alarm %v", e.Err)
	}
	if got := alarmsOf(t, alice); len(got) != 2 {
		t.Fatalf("stored alarms %+v", got)
	}
}

// TestKeyTransparencyAlarmsBounded: a relay that provokes alarm after
// alarm (here forged heads of alice's size, gossiped in bob's name) cannot
// grow alice's storage without end. The first incident's evidence (an
// unproven key for bob) and the newest alarms are kept; the alarms in
// between are counted.
func TestKeyTransparencyAlarmsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t)
	code := r.code(t, 5, time.Hour)
	alice, aev := r.enroll(t, code, "alice", true)
	r.enroll(t, code, "bob", false)
	if _, err := alice.AuditKeyLog(ctx); err != nil {
		t.Fatal(err)
	}
	waitAudits(t, alice, 2)
	r.exec(t, func(tx *sql.Tx) error {
		_, err := tx.Exec(`UPDATE accounts SET identity_key = ? WHERE username = 'bob'`, fakeIdentity(t))
		return err
	})
	if _, err := alice.Send(ctx, "bob", "for bob only"); !errors.Is(err, ErrKeyNotInLog) {
		t.Fatalf("send with a swapped key: %v", err)
	}
	waitEvent(t, aev, EventTransparencyAlarm)
	first := alarmsOf(t, alice)
	if len(first) != 1 || first[0].Kind != AlarmUnprovenKey || len(first[0].HeadA) == 0 {
		t.Fatalf("first alarm %+v", first)
	}
	mine, _ := alice.TransparencyHead(ctx)
	conn, err := alice.connection()
	if err != nil {
		t.Fatal(err)
	}
	const forks = keylog.MaxStoredAlarms + 50
	var last []byte
	for i := range forks {
		other := mine.Root
		other[0] ^= 1
		other[1] = byte(i)
		other[2] = byte(i >> 8)
		forged := transparency.SignHead(r.priv, mine.Size, other, time.Now().UnixMilli())
		last = forged.Encode()
		alice.keylog.NoteGossip("bob", last)
		alice.keylog.CheckGossip(ctx, conn)
		waitEvent(t, aev, EventTransparencyAlarm) // every alarm is still reported
	}
	got := alarmsOf(t, alice)
	if len(got) != keylog.MaxStoredAlarms {
		t.Fatalf("%d alarms stored, want %d", len(got), keylog.MaxStoredAlarms)
	}
	if got[0].Kind != AlarmUnprovenKey || got[0].Detail != first[0].Detail || !bytes.Equal(got[0].HeadA, first[0].HeadA) || !bytes.Equal(got[0].Leaf, first[0].Leaf) {
		t.Fatalf("the first incident's evidence was not kept: %+v", got[0])
	}
	if a := got[len(got)-1]; a.Kind != AlarmFork || !bytes.Equal(a.HeadB, last) {
		t.Fatalf("the newest alarm was not kept: %+v", a)
	}
	dropped, err := alice.TransparencyAlarmsDropped(ctx)
	if err != nil || dropped != 1+forks-keylog.MaxStoredAlarms {
		t.Fatalf("dropped %d (%v), want %d", dropped, err, 1+forks-keylog.MaxStoredAlarms)
	}
}
