package client

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder keeps every event of one device.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func record(t *testing.T, ch chan Event) *recorder {
	r := &recorder{}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case e := <-ch:
				r.mu.Lock()
				r.evs = append(r.evs, e)
				r.mu.Unlock()
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return r
}

func (r *recorder) of(kind EventKind) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.evs {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// wait waits until at least n events of kind were recorded.
func (r *recorder) wait(t *testing.T, kind EventKind, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if evs := r.of(kind); len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d events of kind %d", len(r.of(kind)), n, kind)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitText waits for a message event with this text.
func (r *recorder) waitText(t *testing.T, text string) *Message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, e := range r.of(EventMessage) {
			if e.Message.Text == text {
				return e.Message
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message %q", text)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// summary is what a device shows of a message.
func summary(m *Message) string {
	var rs string
	for _, r := range m.Reactions {
		rs += r.From + ":" + r.Emoji + ","
	}
	return fmt.Sprintf("text=%q versions=%d deleted=%v reactions=%s", m.Text, len(m.Versions), m.Deleted, rs)
}

func linkPhone(t *testing.T, r *testRelay, alice *Client) (*Client, chan Event) {
	t.Helper()
	ctx := context.Background()
	l, err := BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	events := make(chan Event, 100)
	phone, err := l.Finish(ctx, filepath.Join(t.TempDir(), "phone"), []byte("pw"), "phone", &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: func(e Event) { events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close() })
	if err := phone.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	return phone, events
}

// TestReactionsEditsDeletesReachEveryDevice: reactions, edits and a delete
// for everyone reach both users' devices (Alice has two), in order, once.
func TestReactionsEditsDeletesReachEveryDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceCh := r.enroll(t, code, "alice", true)
	bob, bobCh := r.enroll(t, code, "bob", true)
	phone, phoneCh := linkPhone(t, r, alice)
	devs := map[string]*recorder{"alice": record(t, aliceCh), "bob": record(t, bobCh), "phone": record(t, phoneCh)}
	clients := map[string]*Client{"alice": alice, "bob": bob, "phone": phone}
	waitAll := func(n int) {
		t.Helper()
		for _, d := range devs {
			d.wait(t, EventUpdate, n)
		}
	}

	sent, err := alice.Send(ctx, "bob", "v1")
	if err != nil {
		t.Fatal(err)
	}
	devs["bob"].waitText(t, "v1")
	devs["phone"].waitText(t, "v1")

	if err := bob.React(ctx, "alice", sent.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	waitAll(1)
	// Two edits back to back from one device arrive in order.
	if err := alice.Edit(ctx, "bob", sent.ID, "v2"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Edit(ctx, "bob", sent.ID, "v3"); err != nil {
		t.Fatal(err)
	}
	waitAll(3)
	if err := phone.Edit(ctx, "bob", sent.ID, "v4"); err != nil {
		t.Fatal(err)
	}
	waitAll(4)
	if err := bob.React(ctx, "alice", sent.ID, "❤"); err != nil {
		t.Fatal(err)
	}
	waitAll(5)
	if err := bob.Edit(ctx, "alice", sent.ID, "not mine"); err != ErrNotAuthor {
		t.Fatalf("bob edits alice's message: %v", err)
	}
	if err := alice.DeleteForEveryone(ctx, "bob", sent.ID); err != nil {
		t.Fatal(err)
	}
	waitAll(6)

	// Sentinels from every device: once each arrived everywhere, anything
	// sent before them by the same device was processed.
	for _, s := range []struct{ from, to, text string }{{"alice", "bob", "s1"}, {"phone", "bob", "s2"}, {"bob", "alice", "s3"}} {
		if _, err := clients[s.from].Send(ctx, s.to, s.text); err != nil {
			t.Fatal(err)
		}
		for name, d := range devs {
			if name != s.from {
				d.waitText(t, s.text)
			}
		}
	}

	want := []string{
		`text="v1" versions=0 deleted=false reactions=bob:👍,`,
		`text="v2" versions=2 deleted=false reactions=bob:👍,`,
		`text="v3" versions=3 deleted=false reactions=bob:👍,`,
		`text="v4" versions=4 deleted=false reactions=bob:👍,`,
		`text="v4" versions=4 deleted=false reactions=bob:❤,`,
		`text="" versions=0 deleted=true reactions=`,
	}
	for name, d := range devs {
		ups := d.of(EventUpdate)
		if len(ups) != len(want) {
			t.Errorf("%s: %d updates, want %d (exactly once each)", name, len(ups), len(want))
			continue
		}
		for i, e := range ups {
			if got := summary(e.Message); got != want[i] {
				t.Errorf("%s update %d: %s, want %s", name, i, got, want[i])
			}
		}
		peer := "bob"
		if name == "bob" {
			peer = "alice"
		}
		m, err := clients[name].FindMessage(ctx, peer, sent.ID)
		if err != nil || !m.Deleted || m.Text != "" {
			t.Errorf("%s stored %+v %v", name, m, err)
		}
	}
}

// TestDeleteWindowEnforcedBySender: past the window the sender refuses to
// delete for everyone (receivers check it too, with the relay's timestamps).
func TestDeleteWindowEnforcedBySender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	var off atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	alice := enrollOpts(t, r, code, "alice", &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, Now: now})
	_, bobCh := r.enroll(t, code, "bob", true)
	bobRec := record(t, bobCh)
	m, err := alice.Send(ctx, "bob", "old")
	if err != nil {
		t.Fatal(err)
	}
	bobRec.waitText(t, "old")
	off.Store(int64(DeleteWindow + time.Minute))
	if err := alice.DeleteForEveryone(ctx, "bob", m.ID); err != ErrTooLate {
		t.Fatalf("late delete: %v", err)
	}
}

func enrollOpts(t *testing.T, r *testRelay, code, user string, o *Options) *Client {
	t.Helper()
	ctx := context.Background()
	c, err := Enroll(ctx, EnrollParams{Dir: filepath.Join(t.TempDir(), user), Passphrase: []byte("pw"), Invitation: r.inviteCode(t, code, user), DeviceName: "test"}, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	return c
}

// sealedRows returns the sealed message rows of the store in dir, read
// with a separate read-only connection.
func sealedRows(t *testing.T, dir string) [][]byte {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "store.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT v FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// filesContain reports which of the database files of dir contain b.
func filesContain(t *testing.T, dir string, b []byte) []string {
	t.Helper()
	var hits []string
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		data, err := os.ReadFile(filepath.Join(dir, "store.db"+suffix))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, b) {
			hits = append(hits, "store.db"+suffix)
		}
	}
	return hits
}

// TestDisappearingMessageGoneFromBothStores: once its timer ran out, a
// disappearing message is gone from the history of both sides and its
// sealed row from every database file (db, -wal, -shm), including on a
// device that was off when it expired.
func TestDisappearingMessageGoneFromBothStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	var off atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	dirs := map[string]string{"alice": filepath.Join(t.TempDir(), "alice"), "bob": filepath.Join(t.TempDir(), "bob")}
	events := map[string]chan Event{"alice": make(chan Event, 100), "bob": make(chan Event, 100)}
	clients := map[string]*Client{}
	for _, u := range []string{"alice", "bob"} {
		ch := events[u]
		c, err := Enroll(ctx, EnrollParams{Dir: dirs[u], Passphrase: []byte("pw"), Invitation: r.inviteCode(t, code, u), DeviceName: "test"},
			&Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, Now: now, ExpiryInterval: time.Hour, OnEvent: func(e Event) { ch <- e }})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
			t.Fatal(err)
		}
		clients[u] = c
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	alice, bob := clients["alice"], clients["bob"]
	aliceRec, bobRec := record(t, events["alice"]), record(t, events["bob"])

	if err := alice.SetTimer(ctx, "bob", time.Hour); err != nil {
		t.Fatal(err)
	}
	bobRec.wait(t, EventMessage, 1)
	if d, err := bob.Timer(ctx, "alice"); err != nil || d != time.Hour {
		t.Fatalf("bob's timer %v %v", d, err)
	}
	const secret = "the-plaintext-that-must-vanish-7f3a"
	if _, err := alice.Send(ctx, "bob", secret); err != nil {
		t.Fatal(err)
	}
	got := bobRec.waitText(t, secret)
	if got.ExpireSeconds != 3600 || got.ExpiresAt.IsZero() {
		t.Fatalf("bob's copy: %+v", got)
	}
	// A message sent without the timer stays.
	if err := bob.SetTimer(ctx, "alice", 0); err != nil {
		t.Fatal(err)
	}
	aliceRec.wait(t, EventMessage, 1)
	if _, err := bob.Send(ctx, "alice", "kept"); err != nil {
		t.Fatal(err)
	}
	aliceRec.waitText(t, "kept")

	before := map[string][][]byte{}
	for u, dir := range dirs {
		before[u] = sealedRows(t, dir)
	}
	// Bob's device is off when the message expires.
	bob.Close()
	delete(clients, "bob")
	off.Store(int64(time.Hour + time.Minute))
	if n, err := alice.ExpireMessages(ctx); err != nil || n != 1 {
		t.Fatalf("alice expired %d: %v", n, err)
	}
	if e := aliceRec.wait(t, EventExpired, 1)[0]; e.Message.Peer != "bob" || e.Message.From != "alice" {
		t.Fatalf("alice expiry event %+v", e.Message)
	}
	// Bob's store deletes it when opened.
	bob, err := Open(ctx, dirs["bob"], []byte("pw"), &Options{Now: now, ExpiryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	clients["bob"] = bob

	for u, c := range map[string]*Client{"alice": alice, "bob": bob} {
		peer := map[string]string{"alice": "bob", "bob": "alice"}[u]
		hist, err := c.History(ctx, peer, 0)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, m := range hist {
			if m.Text == secret {
				t.Errorf("%s: the expired message is still in the history", u)
			}
			texts = append(texts, m.Kind+m.Text)
		}
		if fmt.Sprint(texts) != "[timer timer kept]" {
			t.Errorf("%s history %v", u, texts)
		}
		if hits := filesContain(t, dirs[u], []byte(secret)); len(hits) > 0 {
			t.Errorf("%s: plaintext found in %v", u, hits)
		}
		after := sealedRows(t, dirs[u])
		if len(after) != len(before[u])-1 {
			t.Fatalf("%s: %d rows before, %d after", u, len(before[u]), len(after))
		}
		for _, row := range before[u] {
			if containsRow(after, row) {
				continue
			}
			// The deleted row: not in the database file, nor in the WAL.
			if hits := filesContain(t, dirs[u], row[len(row)-32:]); len(hits) > 0 {
				t.Errorf("%s: the expired message's sealed row remains in %v", u, hits)
			}
		}
	}
}

func containsRow(rows [][]byte, row []byte) bool {
	for _, r := range rows {
		if bytes.Equal(r, row) {
			return true
		}
	}
	return false
}

func TestSettingsReadReceiptsTypingSearch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceCh := r.enroll(t, code, "alice", true)
	bob, bobCh := r.enroll(t, code, "bob", true)
	aliceRec, bobRec := record(t, aliceCh), record(t, bobCh)

	if s, err := alice.Settings(ctx); err != nil || !s.ReadReceipts || s.Typing {
		t.Fatalf("defaults %+v %v", s, err)
	}
	// Typing is off by default: nothing is sent.
	if err := alice.SendTyping(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	m1, err := alice.Send(ctx, "bob", "Hello Bob, lunch at noon?")
	if err != nil {
		t.Fatal(err)
	}
	bobRec.waitText(t, m1.Text)
	if n := len(bobRec.of(EventTyping)); n != 0 {
		t.Fatalf("typing shown while off: %d", n)
	}
	for _, c := range []*Client{alice, bob} {
		if err := c.SetSettings(ctx, Settings{ReadReceipts: true, Typing: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.SendTyping(ctx, "bob", true); err != nil {
		t.Fatal(err)
	}
	if e := bobRec.wait(t, EventTyping, 1)[0]; e.User != "alice" || !e.Typing {
		t.Fatalf("typing %+v", e)
	}

	// Bob switches read receipts off: he sends none.
	if err := bob.SetSettings(ctx, Settings{ReadReceipts: false}); err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, "alice", m1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "alice", "sentinel"); err != nil {
		t.Fatal(err)
	}
	aliceRec.waitText(t, "sentinel")
	for _, e := range aliceRec.of(EventReceipt) {
		if e.Receipt.Read {
			t.Fatal("a read receipt was sent while switched off")
		}
	}
	// Read locally all the same: no unread left for Bob.
	convs, err := bob.Conversations(ctx)
	if err != nil || len(convs) != 1 || convs[0].Unread != 0 {
		t.Fatalf("bob conversations %+v %v", convs, err)
	}
	convs, err = alice.Conversations(ctx)
	if err != nil || len(convs) != 1 || convs[0].Unread != 1 || convs[0].Last.Text != "sentinel" {
		t.Fatalf("alice conversations %+v %v", convs, err)
	}

	// Replies quote; search finds case-insensitively, in the encrypted store.
	reply, err := bob.SendText(ctx, "alice", "yes, NOON works", m1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := aliceRec.waitText(t, reply.Text); !bytes.Equal(got.QuoteID, m1.ID) {
		t.Fatalf("reply quote %x", got.QuoteID)
	}
	found, err := alice.Search(ctx, "noon", 0)
	if err != nil || len(found) != 2 {
		t.Fatalf("search: %d %v", len(found), err)
	}
	if found, _ := alice.Search(ctx, "dinner", 0); len(found) != 0 {
		t.Fatalf("search found %d", len(found))
	}
}

// TestReadStateSyncedToOwnDevices: what one device showed is read on the
// account's other devices too.
func TestReadStateSyncedToOwnDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, aliceCh := r.enroll(t, code, "alice", true)
	bob, _ := r.enroll(t, code, "bob", true)
	phone, phoneCh := linkPhone(t, r, alice)
	aliceRec, phoneRec := record(t, aliceCh), record(t, phoneCh)
	m, err := bob.Send(ctx, "alice", "read me")
	if err != nil {
		t.Fatal(err)
	}
	aliceRec.waitText(t, "read me")
	phoneRec.waitText(t, "read me")
	if convs, err := phone.Conversations(ctx); err != nil || len(convs) != 1 || convs[0].Unread != 1 {
		t.Fatalf("phone before: %+v %v", convs, err)
	}
	if err := alice.MarkRead(ctx, "bob", m.ID); err != nil {
		t.Fatal(err)
	}
	if e := phoneRec.wait(t, EventUpdate, 1)[0]; !e.Message.Read || string(e.Message.ID) != string(m.ID) {
		t.Fatalf("phone update %+v", e.Message)
	}
	if convs, err := phone.Conversations(ctx); err != nil || len(convs) != 1 || convs[0].Unread != 0 {
		t.Fatalf("phone after: %+v %v", convs, err)
	}
}

// TestLateDeleteRefusedByReceiver: receivers judge the delete window with
// the relay's timestamps, so a delete sent more than DeleteWindow after its
// message changes nothing, whatever the sender's clock says.
func TestLateDeleteRefusedByReceiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, 30*24*time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	bob, bobCh := r.enroll(t, code, "bob", true)
	bobRec := record(t, bobCh)
	m, err := alice.Send(ctx, "bob", "keep me")
	if err != nil {
		t.Fatal(err)
	}
	bobRec.waitText(t, "keep me")
	// A day and more later by the relay's clock; Alice's clock lags, so
	// her own check lets the delete go.
	r.off.Store(int64(DeleteWindow + time.Hour))
	if err := alice.DeleteForEveryone(ctx, "bob", m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "sentinel"); err != nil {
		t.Fatal(err)
	}
	bobRec.waitText(t, "sentinel")
	if n := len(bobRec.of(EventUpdate)); n != 0 {
		t.Fatalf("bob applied %d updates", n)
	}
	for c, peer := range map[*Client]string{alice: "bob", bob: "alice"} {
		got, err := c.FindMessage(ctx, peer, m.ID)
		if err != nil || got.Deleted || got.Text != "keep me" {
			t.Fatalf("%s's copy %+v %v", c.Username(), got, err)
		}
	}
}
