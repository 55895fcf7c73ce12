package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/content"
)

// attachmentKey returns the file key c holds for the attachment of message
// id, read from its encrypted store.
func attachmentKey(t *testing.T, c *Client, id []byte) []byte {
	t.Helper()
	b, err := c.db.Get(context.Background(), tblAttachments, id)
	if err != nil {
		t.Fatal(err)
	}
	var rec attachmentRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	var p content.AttachmentPointer
	if err := proto.Unmarshal(rec.Pointer, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Key) != 32 {
		t.Fatalf("file key of %d bytes", len(p.Key))
	}
	return p.Key
}

// TestDisappearingAttachmentGone: a file sent while the conversation has a
// timer disappears with its message: the copies the receiver downloaded are
// removed (on a device that was off, when it is opened again), the file key
// is gone from both stores so Download fails, and neither the content nor
// the key nor the caption is left in any database file (db, -wal, -shm).
func TestDisappearingAttachmentGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	var off atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(off.Load())) }
	aliceDir, bobDir := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob")
	alice, err := Enroll(ctx, EnrollParams{Dir: aliceDir, Passphrase: []byte("pw"), Invitation: r.inviteCode(t, code, "alice"), DeviceName: "test"},
		&Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, Now: now, ExpiryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	if err := alice.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	bobEvents := make(chan Event, 100)
	bob, err := Enroll(ctx, EnrollParams{Dir: bobDir, Passphrase: []byte("pw"), Invitation: r.inviteCode(t, code, "bob"), DeviceName: "test"},
		&Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, Now: now, ExpiryInterval: time.Hour, OnEvent: func(e Event) { bobEvents <- e }})
	if err != nil {
		t.Fatal(err)
	}
	bobOpen := true
	defer func() {
		if bobOpen {
			bob.Close()
		}
	}()
	if err := bob.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}

	if err := alice.SetTimer(ctx, "bob", time.Hour); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bobEvents, EventMessage) // the timer change
	if d, err := bob.Timer(ctx, "alice"); err != nil || d != time.Hour {
		t.Fatalf("bob's timer %v %v", d, err)
	}

	const secret = "attachment-plaintext-that-must-vanish-c41d"
	const caption = "caption-that-must-vanish-9e2b"
	src := filepath.Join(t.TempDir(), "report.txt")
	if err := os.WriteFile(src, []byte(strings.Repeat(secret, 50)), 0o600); err != nil {
		t.Fatal(err)
	}
	m := sendFile(t, alice, bobEvents, src, FileOptions{Caption: caption})
	if m.ExpireSeconds != 3600 || m.ExpiresAt.IsZero() {
		t.Fatalf("bob's copy has no timer: %+v", m)
	}

	// Bob downloads it twice: into the default folder and to a path of
	// his choosing.
	got, _, err := bob.Download(ctx, m.ID, DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(got) != filepath.Join(bobDir, "attachments") {
		t.Fatalf("downloaded to %s", got)
	}
	out := filepath.Join(t.TempDir(), "mine.txt")
	if _, _, err := bob.Download(ctx, m.ID, DownloadOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{got, out} {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte(secret)) {
			t.Fatalf("%s: %v", p, err)
		}
	}
	keys := map[string][]byte{"alice": attachmentKey(t, alice, m.ID), "bob": attachmentKey(t, bob, m.ID)}
	if !bytes.Equal(keys["alice"], keys["bob"]) {
		t.Fatal("alice and bob hold different file keys")
	}

	// Bob's device is off when the message expires.
	bob.Close()
	bobOpen = false
	off.Store(int64(time.Hour + time.Minute))
	if n, err := alice.ExpireMessages(ctx); err != nil || n != 1 {
		t.Fatalf("alice expired %d: %v", n, err)
	}
	for _, p := range []string{got, out} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("bob's copy went while bob was off: %v", err)
		}
	}
	// Bob's device deletes everything when opened.
	bob, err = Open(ctx, bobDir, []byte("pw"), &Options{Now: now, ExpiryInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	bobOpen = true
	for _, p := range []string{got, out} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("downloaded copy %s still there: %v", p, err)
		}
	}

	for u, c := range map[string]*Client{"alice": alice, "bob": bob} {
		if _, _, err := c.Download(ctx, m.ID, DownloadOptions{Dir: t.TempDir()}); !errors.Is(err, ErrNoAttachment) {
			t.Errorf("%s: download after expiry: %v, want ErrNoAttachment", u, err)
		}
		if _, err := c.db.Get(ctx, tblAttachments, m.ID); err == nil {
			t.Errorf("%s: the attachment record is still stored", u)
		}
		peer := map[string]string{"alice": "bob", "bob": "alice"}[u]
		hist, err := c.History(ctx, peer, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hist {
			if h.Attachment != nil || bytes.Equal(h.ID, m.ID) {
				t.Errorf("%s: the expired attachment is still in the history: %+v", u, h)
			}
		}
		dir := map[string]string{"alice": aliceDir, "bob": bobDir}[u]
		for what, b := range map[string][]byte{"content": []byte(secret), "caption": []byte(caption), "file key": keys[u]} {
			if hits := filesContain(t, dir, b); len(hits) > 0 {
				t.Errorf("%s: the %s is in %v", u, what, hits)
			}
		}
	}
}
