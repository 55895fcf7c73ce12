package client

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"sotto/client/groups"
)

// find returns the message with text among ms.
func find(t *testing.T, who string, ms []groups.Message, text string) *groups.Message {
	t.Helper()
	for i := range ms {
		if ms[i].Text == text {
			return &ms[i]
		}
	}
	t.Fatalf("%s: no message %q in %+v", who, text, ms)
	return nil
}

// Everything 1:1 chats have, in a group, with a real relay: replies,
// mentions, reactions, edits, deletes (only the author's), a file
// uploaded once and read by every member, a disappearing timer set by
// one member that applies on every device, and batched receipts when the
// setting is on.
func TestGroupMessagingFeatures(t *testing.T) {
	ctx := context.Background()
	r := startBlobRelay(t, nil).testRelay
	code := r.code(t, 3, time.Hour)
	alice := newGroupUser(t, r, code, "alice")
	bob := newGroupUser(t, r, code, "bob")
	carol := newGroupUser(t, r, code, "carol")
	id, err := alice.g.Create(ctx, "team", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	carol.sync(t)

	hello, err := alice.g.SendText(ctx, id, "hello @bob and @mallory", groups.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hello.Mentions, []string{"bob"}) || len(hello.ID) != 16 {
		t.Fatalf("sent: %+v", hello)
	}
	got := find(t, "bob", bob.sync(t), "hello @bob and @mallory")
	if !slices.Equal(got.Mentions, []string{"bob"}) || !bytes.Equal(got.ID, hello.ID) || got.From != "alice" {
		t.Fatalf("bob got %+v", got)
	}
	reply, err := bob.g.SendText(ctx, id, "hi", groups.SendOptions{QuoteID: hello.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.g.React(ctx, id, hello.ID, "👍"); err == nil {
		t.Fatal("carol reacted to a message she has not received")
	}
	carol.sync(t)
	if _, err := carol.g.React(ctx, id, hello.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.g.Edit(ctx, id, hello.ID, "carol's words"); err == nil {
		t.Fatal("carol edited alice's message")
	}
	if _, err := alice.g.Edit(ctx, id, hello.ID, "hello all"); err != nil {
		t.Fatal(err)
	}
	as := alice.sync(t)
	if m := find(t, "alice", as, "hi"); !bytes.Equal(m.QuoteID, hello.ID) {
		t.Fatalf("the reply lost its quote: %+v", m)
	}
	bs := bob.sync(t)
	for _, u := range []*groupUser{alice, bob} {
		m, err := u.g.Message(ctx, id, hello.ID)
		if err != nil {
			t.Fatal(err)
		}
		if m.Text != "hello all" || len(m.Versions) != 2 || len(m.Reactions) != 1 || m.Reactions[0].From != "carol" || m.Reactions[0].Emoji != "👍" {
			t.Fatalf("%s sees %+v", u.name, m)
		}
	}
	if !slices.ContainsFunc(bs, func(m groups.Message) bool { return m.Updated && bytes.Equal(m.ID, hello.ID) }) {
		t.Fatalf("bob's sync did not report the change: %+v", bs)
	}

	// bob deletes his reply for everyone; alice cannot delete it.
	if _, err := alice.g.Delete(ctx, id, reply.ID); err == nil {
		t.Fatal("alice deleted bob's message")
	}
	if _, err := bob.g.Delete(ctx, id, reply.ID); err != nil {
		t.Fatal(err)
	}
	alice.sync(t)
	if m, err := alice.g.Message(ctx, id, reply.ID); err != nil || !m.Deleted || m.Text != "" {
		t.Fatalf("alice: %+v %v", m, err)
	}

	// A file: uploaded once, read by every member.
	path := filepath.Join(t.TempDir(), "plan.txt")
	data := bytes.Repeat([]byte("the plan "), 5000)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fm, err := alice.c.SendGroupFile(ctx, alice.g, id, path, FileOptions{Caption: "the plan"})
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	carol.sync(t)
	for _, u := range []*groupUser{bob, carol} {
		var buf bytes.Buffer
		m, err := u.c.DownloadGroupFile(ctx, u.g, id, fm.ID, &buf)
		if err != nil || !bytes.Equal(buf.Bytes(), data) || m.Attachment.Name != "plan.txt" || m.Text != "the plan" {
			t.Fatalf("%s: %v %d bytes %+v", u.name, err, buf.Len(), m)
		}
	}

	// carol sets a timer: every device keeps the next messages only that
	// long (checked with Expire at a later instant, not by waiting).
	if _, err := carol.g.SetTimer(ctx, id, time.Hour); err != nil {
		t.Fatal(err)
	}
	alice.sync(t)
	bob.sync(t)
	if d, _ := alice.g.Timer(ctx, id); d != time.Hour {
		t.Fatalf("alice's timer %v", d)
	}
	brief, err := alice.g.Send(ctx, id, "this will go")
	if err != nil {
		t.Fatal(err)
	}
	bm := find(t, "bob", bob.sync(t), "this will go")
	if bm.TimerSeconds != 3600 || bm.ExpiresAt.IsZero() {
		t.Fatalf("bob's copy does not disappear: %+v", bm)
	}
	for _, u := range []*groupUser{alice, bob} {
		if n, err := u.g.Expire(ctx, time.Now()); err != nil || n != 0 {
			t.Fatalf("%s expired %d early: %v", u.name, n, err)
		}
		if n, err := u.g.Expire(ctx, time.Now().Add(2*time.Hour)); err != nil || n != 1 {
			t.Fatalf("%s expired %d: %v", u.name, n, err)
		}
		if _, err := u.g.Message(ctx, id, brief.ID); err == nil {
			t.Fatalf("%s still has the message", u.name)
		}
	}

	// Receipts: off by default; with the setting on, bob's delivery and
	// read receipts reach alice, one batch each.
	if _, err := carol.g.SetTimer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	alice.sync(t)
	bob.sync(t)
	s, _ := bob.c.Settings(ctx)
	s.GroupReceipts = true
	if err := bob.c.SetSettings(ctx, s); err != nil {
		t.Fatal(err)
	}
	one, _ := alice.g.Send(ctx, id, "one")
	two, _ := alice.g.Send(ctx, id, "two")
	bob.sync(t)
	alice.sync(t)
	for _, m := range []*groups.Message{one, two} {
		got, err := alice.g.Message(ctx, id, m.ID)
		if err != nil || !slices.Equal(got.DeliveredTo, []string{"bob"}) || len(got.ReadBy) != 0 {
			t.Fatalf("%+v %v", got, err)
		}
	}
	if n, err := bob.g.MarkRead(ctx, id); err != nil || n == 0 {
		t.Fatalf("mark read: %d %v", n, err)
	}
	alice.sync(t)
	if got, _ := alice.g.Message(ctx, id, two.ID); !slices.Equal(got.ReadBy, []string{"bob"}) {
		t.Fatalf("not read: %+v", got)
	}
	if got, _ := alice.g.Message(ctx, id, hello.ID); len(got.DeliveredTo) != 0 {
		t.Fatalf("carol (receipts off) sent receipts: %+v", got)
	}
}
