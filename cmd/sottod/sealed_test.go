package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sotto/client"
	"sotto/client/org"
	"sotto/client/store"
	"sotto/internal/orgtest"
	"sotto/relay/sqlitestore"
	"sotto/signal/keys"
	"sotto/wire"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startDebugProc is startProc with debug logs kept for inspection.
func startDebugProc(t *testing.T, dir string, logs io.Writer) *relayProc {
	t.Helper()
	cmd := exec.Command("sottod", "serve", "-data", dir, "-listen", "127.0.0.1:0", "-log-level", "debug")
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &relayProc{cmd: cmd}
	t.Cleanup(func() { p.kill() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, u, ok := strings.Cut(sc.Text(), "relay listening on "); ok {
			p.url = u
			break
		}
	}
	if p.url == "" {
		t.Fatal("sottod serve did not print its URL")
	}
	go io.Copy(io.Discard, out)
	return p
}

type sealedRow struct {
	sender string
	device int64
	typ    int64
}

func relayRows(t *testing.T, dir string) []sealedRow {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlitestore.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT sender, sender_device, type FROM envelopes ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []sealedRow
	for rows.Next() {
		var r sealedRow
		if err := rows.Scan(&r.sender, &r.device, &r.typ); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func nextMessage(t *testing.T, events chan client.Event, text string) *client.Message {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == client.EventMessage && e.Message.Text == text {
				return e.Message
			}
		case <-timeout:
			t.Fatalf("no message %q", text)
		}
	}
}

// invitationsIn registers an organization in the data directory of the
// relay serving at url, as its bootstrap would, and mints a client
// invitation for each name, pinning the relay's key log key.
func invitationsIn(t *testing.T, dir, url string, names ...string) map[string]*org.Opened {
	t.Helper()
	ctx := context.Background()
	logKey, err := loadLogKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := orgtest.New("Test Org")
	if err := o.Register(ctx, st); err != nil {
		t.Fatal(err)
	}
	out := map[string]*org.Opened{}
	now := time.Now()
	for _, n := range names {
		out[n], err = o.Invitation(ctx, st, org.MintParams{Username: n, Expires: now.Add(24 * time.Hour), RelayURL: url,
			LogKey: logKey.Public().(ed25519.PublicKey), Now: now})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestSealedSenderWithSottod runs `sottod serve` as a real process and two
// real clients: once they know each other's profile keys a message goes
// sealed, its mailbox row and the relay's debug logs name no sender, and the
// recipient shows the right sender.
func TestSealedSenderWithSottod(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	logs := &lockedBuffer{}
	p := startDebugProc(t, dir, logs)
	invitations := invitationsIn(t, dir, p.url, "alice", "bob")

	// The trust root sottod made in its data dir.
	b, err := os.ReadFile(filepath.Join(dir, sealedRootFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, sealedRootFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("trust root key mode %v", fi.Mode().Perm())
	}
	raw, _ := hex.DecodeString(strings.TrimSpace(string(b)))
	if _, err := keys.ParsePrivateKey(raw); err != nil {
		t.Fatalf("trust root key file: %v", err)
	}

	clients := map[string]*client.Client{}
	events := map[string]chan client.Event{}
	// Delivery receipts each client has received (and acknowledged), by
	// message id: they come after the message they confirm.
	var receiptsMu sync.Mutex
	receipts := map[string]bool{}
	receiptFor := func(id []byte) bool {
		receiptsMu.Lock()
		defer receiptsMu.Unlock()
		return receipts[string(id)]
	}
	for _, name := range []string{"alice", "bob"} {
		ch := make(chan client.Event, 100)
		onEvent := func(e client.Event) {
			if e.Kind == client.EventReceipt && !e.Receipt.Read {
				receiptsMu.Lock()
				for _, id := range e.Receipt.IDs {
					receipts[string(id)] = true
				}
				receiptsMu.Unlock()
			}
			ch <- e
		}
		c, err := client.Enroll(ctx, client.EnrollParams{Dir: filepath.Join(t.TempDir(), name), Passphrase: []byte("pw"),
			Invitation: invitations[name], DeviceName: "test"}, &client.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy, OnEvent: onEvent})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Connect(ctx, client.ConnectOptions{Receive: true}); err != nil {
			t.Fatal(err)
		}
		clients[name], events[name] = c, ch
	}
	alice, bob := clients["alice"], clients["bob"]
	if s, err := alice.SendsSealed(ctx, "bob"); err != nil || s {
		t.Fatalf("sealed before any profile key: %v %v", s, err)
	}
	hiBob, err := alice.Send(ctx, "bob", "hi bob")
	if err != nil {
		t.Fatal(err)
	}
	nextMessage(t, events["bob"], "hi bob")
	hiAlice, err := bob.Send(ctx, "alice", "hi alice")
	if err != nil {
		t.Fatal(err)
	}
	nextMessage(t, events["alice"], "hi alice")
	waitFor(t, "profile keys both ways", func() bool {
		a, _ := alice.SendsSealed(ctx, "bob")
		b, _ := bob.SendsSealed(ctx, "alice")
		return a && b
	})
	// A client sends its delivery receipt after it reports the message, so
	// alice's receipt for "hi alice" may reach the relay only after bob
	// disconnected, and stay queued for him. Nothing is in flight once both
	// receipts were received (a receipt is reported after its ack).
	waitFor(t, "the delivery receipts both ways", func() bool { return receiptFor(hiBob.ID) && receiptFor(hiAlice.ID) })

	bob.Disconnect()
	waitFor(t, "an empty mailbox", func() bool { return len(relayRows(t, dir)) == 0 })
	mark := len(logs.String())
	if _, err := alice.Send(ctx, "bob", "sealed through sottod"); err != nil {
		t.Fatal(err)
	}
	rows := relayRows(t, dir)
	if len(rows) == 0 {
		t.Fatal("no mailbox row")
	}
	for _, r := range rows {
		if r.sender != "" || r.device != 0 || r.typ != wire.EnvelopeTypeSealed {
			t.Fatalf("mailbox row names a sender: %+v", r)
		}
	}
	if l := logs.String()[mark:]; strings.Contains(l, "alice") {
		t.Fatalf("sottod's logs of the sealed send name alice:\n%s", l)
	}
	if err := bob.Connect(ctx, client.ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	m := nextMessage(t, events["bob"], "sealed through sottod")
	if m.From != "alice" || m.FromDevice != alice.DeviceID() {
		t.Fatalf("bob shows %s.%d as the sender", m.From, m.FromDevice)
	}
}
