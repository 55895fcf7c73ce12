package client

import (
	"context"
	"log/slog"
	"path/filepath"
	"sotto/client/sealedsender"
	"strings"
	"testing"
	"time"
)

// TestProfileKeyCountAfterLock: a send that carried the profile key can
// complete after the idle lock (or Close) zeroed the store's keys, as when
// a read receipt is under way when the chat locks, or after its context
// ended, as when the chat exits. Its count is then not
// saved, quietly (the next send carries the key once more), instead of a
// warning on the terminal; the count kept before stays.
func TestProfileKeyCountAfterLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	logs := &syncBuffer{}
	c, err := Enroll(ctx, EnrollParams{Dir: filepath.Join(t.TempDir(), "alice"), Passphrase: []byte("pw"),
		Invitation: r.invite(t, "alice", time.Hour), DeviceName: "test"},
		&Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	count := func() []byte {
		t.Helper()
		b, err := c.db.Get(ctx, sealedsender.Table, sealedsender.SentRow("bob"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c.sealed.Delivered(ctx, "bob")
	if b := count(); len(b) != 1 || b[0] != 1 {
		t.Fatalf("count %v, want 1", b)
	}
	c.Lock()
	c.sealed.Delivered(ctx, "bob")
	if err := c.Unlock(ctx, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if b := count(); len(b) != 1 || b[0] != 1 {
		t.Fatalf("count %v after a send completed while locked, want 1", b)
	}
	// The command ends (Ctrl-C in chat) while a read receipt is under way.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	c.sealed.Delivered(ended, "bob")
	if b := count(); len(b) != 1 || b[0] != 1 {
		t.Fatalf("count %v after a send completed as its context ended, want 1", b)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c.sealed.Delivered(ctx, "bob")
	if l := logs.String(); strings.Contains(l, "profile key send count") {
		t.Fatalf("warned about the locked store or the ended context:\n%s", l)
	}
}
