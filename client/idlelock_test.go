package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"sotto/client/org"
	"sotto/client/store"
)

func TestIdleLockDropsAndRederivesTheKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	w.chat(t, bob, "before the lock")
	if d, err := bob.c.IdleLockTimeout(ctx); err != nil || d != 0 {
		t.Fatalf("idle lock without a policy: %v %v", d, err)
	}
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{IdleLockSeconds: 120}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bob.events, EventOrgPolicy)
	if d, err := bob.c.IdleLockTimeout(ctx); err != nil || d != 2*time.Minute {
		t.Fatalf("idle lock timeout: %v %v, want 2m", d, err)
	}

	bob.c.Lock()
	if !bob.c.Locked() {
		t.Fatal("not locked")
	}
	if _, err := bob.c.History(ctx, "alice", 0); !errors.Is(err, ErrLocked) {
		t.Fatalf("history while locked: %v", err)
	}
	if _, err := bob.c.Send(ctx, "alice", "x"); err == nil {
		t.Fatal("sent while locked")
	}
	if err := bob.c.Connect(ctx, ConnectOptions{Receive: true}); !errors.Is(err, ErrLocked) {
		t.Fatalf("connect while locked: %v", err)
	}
	// What arrives meanwhile waits at the relay.
	if _, err := w.admin.Send(ctx, "bob", "during the lock"); err != nil {
		t.Fatal(err)
	}
	if err := bob.c.Unlock(ctx, []byte("wrong")); !errors.Is(err, store.ErrWrongPassphrase) {
		t.Fatalf("unlock with a wrong passphrase: %v", err)
	}
	if !bob.c.Locked() {
		t.Fatal("a wrong passphrase unlocked")
	}
	if err := bob.c.Unlock(ctx, []byte("pw")); err != nil {
		t.Fatal(err)
	}
	if err := bob.c.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	for {
		if e := waitEvent(t, bob.events, EventMessage); e.Message.Text == "during the lock" {
			break
		}
	}
	h, err := bob.c.History(ctx, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range h {
		texts = append(texts, m.Text)
	}
	if len(texts) != 2 || texts[0] != "before the lock" || texts[1] != "during the lock" {
		t.Fatalf("history after unlock: %q", texts)
	}
}
