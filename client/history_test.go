package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client/conversation"
)

// testClock is a settable clock for a client (Options.Now).
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time      { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) add(d time.Duration) { c.off.Add(int64(d)) }

// enrollClock enrolls user with its own clock, connected and receiving.
func (r *blobRelay) enrollClock(t *testing.T, code, user string, clk *testClock) (*Client, chan Event) {
	t.Helper()
	ctx := context.Background()
	events := make(chan Event, 100)
	c, err := Enroll(ctx, EnrollParams{Dir: filepath.Join(t.TempDir(), user), Passphrase: []byte("pw"), Invitation: r.inviteCode(t, code, user), DeviceName: "laptop"}, &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, Now: clk.now, OnEvent: func(e Event) { events <- e }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	return c, events
}

// linkWith links a new device to the account of approver and returns it,
// not yet connected, with the approver's summary.
func linkWith(t *testing.T, url string, approver *Client, o ApproveOptions, clk *testClock) (*Client, *HistorySummary) {
	t.Helper()
	ctx := context.Background()
	l, err := BeginLink(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := approver.ApproveLinkWith(ctx, l.Code(), o)
	if err != nil {
		t.Fatal(err)
	}
	opts := &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase}
	if clk != nil {
		opts.Now = clk.now
	}
	phone, err := l.Finish(ctx, filepath.Join(t.TempDir(), "phone"), []byte("pw"), "phone", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close() })
	if err := phone.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	return phone, sum
}

// describe renders a history as the user sees it, one line per message.
func describe(ms []*Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%x %s→%s out=%v %q kind=%s timer=%d expires=%d read=%v deleted=%v versions=%d reactions=%d file=%v\n",
			m.ID, m.From, m.Peer, m.Outgoing, m.Text, m.Kind, m.TimerSeconds, m.ExpiresAt.UnixMilli(), m.Read, m.Deleted, len(m.Versions), len(m.Reactions), m.Attachment != nil)
	}
	return b.String()
}

func contactsOf(t *testing.T, c *Client) string {
	t.Helper()
	cs, err := c.Contacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%+v", cs)
}

// TestLinkWithHistory: a device linked with history lists the same
// conversations and messages as the approving device, the same contacts
// with the same safety numbers and verification state, and the same
// settings; a message whose disappearing timer ran out is not transferred,
// one still running keeps its deadline; importing again adds nothing.
func TestLinkWithHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 3, time.Hour)
	clk := &testClock{}
	alice, _ := r.enrollClock(t, code, "alice", clk)
	bob, bobEvents := r.enroll(t, code, "bob", true)
	carol, carolEvents := r.enroll(t, code, "carol", true)

	send := func(from *Client, to, text string, events chan Event) *Message {
		t.Helper()
		m, err := from.Send(ctx, to, text)
		if err != nil {
			t.Fatal(err)
		}
		for events != nil {
			if e := waitEvent(t, events, EventMessage); e.Message.Text == text {
				break
			}
		}
		return m
	}
	waitStored := func(peer, text string) {
		t.Helper()
		for range 400 {
			h, err := alice.History(ctx, peer, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range h {
				if m.Text == text {
					return
				}
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatalf("alice never stored %q", text)
	}
	send(alice, "bob", "hi bob", bobEvents)
	send(bob, "alice", "hi alice", nil)
	waitStored("bob", "hi alice")
	send(alice, "carol", "hello carol", carolEvents)
	send(carol, "alice", "hello alice", nil)
	waitStored("carol", "hello alice")
	if err := alice.React(ctx, "bob", mustFind(t, alice, "bob", "hi alice").ID, "👍"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bobEvents, EventUpdate)

	// A disappearing message that runs out before the link, and one that
	// does not.
	if err := alice.SetTimer(ctx, "carol", time.Hour); err != nil {
		t.Fatal(err)
	}
	send(alice, "carol", "gone soon", carolEvents)
	clk.add(2 * time.Hour)
	if err := alice.SetTimer(ctx, "carol", 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	send(alice, "carol", "still here", carolEvents)

	if err := alice.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetSettings(ctx, Settings{ReadReceipts: false, Typing: true}); err != nil {
		t.Fatal(err)
	}

	before := map[string]bool{}
	for _, f := range r.blobFiles(t) {
		before[f] = true
	}
	// 7 messages: 4 texts, 2 timer changes, "still here"; "gone soon" is
	// left out (Expired, or already deleted by the laptop's janitor).
	phone, sum := linkWith(t, r.url, alice, ApproveOptions{History: true}, clk)
	var blob string
	for _, f := range r.blobFiles(t) {
		if !before[f] {
			blob = f
		}
	}
	if blob == "" {
		t.Fatal("no history blob on the relay")
	}
	if sum == nil || sum.Conversations != 2 || sum.Contacts != 2 || sum.Messages != 7 {
		t.Fatalf("export summary %+v", sum)
	}
	got, err := phone.ImportHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Messages != sum.Messages || got.Conversations != 2 || got.Contacts != 2 || got.Bytes != sum.Bytes {
		t.Fatalf("imported %+v, exported %+v", got, sum)
	}
	// The phone reports the import; the laptop, the uploader, deletes the
	// blob from the relay.
	for i := 0; ; i++ {
		if _, err := os.Stat(blob); errors.Is(err, os.ErrNotExist) {
			break
		}
		if i == 800 {
			t.Fatal("the history blob is still on the relay")
		}
		time.Sleep(25 * time.Millisecond)
	}

	// The laptop's janitor deletes the expired message (maybe not yet).
	if _, err := alice.ExpireMessages(ctx); err != nil {
		t.Fatal(err)
	}
	for _, peer := range []string{"bob", "carol"} {
		want, err := alice.History(ctx, peer, 0)
		if err != nil {
			t.Fatal(err)
		}
		have, err := phone.History(ctx, peer, 0)
		if err != nil {
			t.Fatal(err)
		}
		if describe(have) != describe(want) {
			t.Fatalf("history with %s differs:\nlaptop:\n%sphone:\n%s", peer, describe(want), describe(have))
		}
		for _, m := range have {
			if m.Text == "gone soon" {
				t.Fatal("an expired message was transferred")
			}
		}
	}
	sc := mustFind(t, phone, "carol", "still here")
	if sc.ExpiresAt.IsZero() || !sc.ExpiresAt.Equal(mustFind(t, alice, "carol", "still here").ExpiresAt) {
		t.Fatalf("disappearing deadline not kept: %v", sc.ExpiresAt)
	}
	if d, _ := phone.Timer(ctx, "carol"); d != 7*24*time.Hour {
		t.Fatalf("timer %v", d)
	}
	ac, err := alice.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := phone.Conversations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ac) != 2 || len(pc) != len(ac) || pc[0].Peer != ac[0].Peer || pc[1].Peer != ac[1].Peer {
		t.Fatalf("conversations %+v vs %+v", pc, ac)
	}
	if contactsOf(t, phone) != contactsOf(t, alice) {
		t.Fatalf("contacts %s, want %s", contactsOf(t, phone), contactsOf(t, alice))
	}
	for _, peer := range []string{"bob", "carol"} {
		a, err := alice.SafetyNumber(ctx, peer)
		if err != nil {
			t.Fatal(err)
		}
		p, err := phone.SafetyNumber(ctx, peer)
		if err != nil {
			t.Fatal(err)
		}
		if a.Digits != p.Digits || a.Verified != p.Verified {
			t.Fatalf("safety number with %s: %s %v vs %s %v", peer, p.Digits, p.Verified, a.Digits, a.Verified)
		}
	}
	if s, err := phone.Settings(ctx); err != nil || s.ReadReceipts || !s.Typing {
		t.Fatalf("settings %+v %v", s, err)
	}
	if _, err := phone.ImportHistory(ctx); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("second import: %v", err)
	}

	// The same export again: every message is a duplicate.
	b, _, err := alice.exportHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := phone.importHistory(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if again.Messages != 0 || again.Duplicates != sum.Messages {
		t.Fatalf("re-import %+v", again)
	}

	// An export holding a message expired by the new device's clock
	// (exported long ago, say): not imported.
	clk.add(8 * 24 * time.Hour)
	b.Messages = b.Messages[:0]
	stale := *sc
	stale.ID = bytes.Repeat([]byte{9}, len(sc.ID))
	b.Messages = append(b.Messages, conversation.HistoryMessage{Author: "alice", Message: &stale})
	late, err := phone.importHistory(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if late.Messages != 0 || late.Expired != 1 {
		t.Fatalf("expired import %+v", late)
	}

	// The phone works as a device of the account afterwards.
	if _, err := phone.Send(ctx, "bob", "from the phone"); err != nil {
		t.Fatal(err)
	}
}

func mustFind(t *testing.T, c *Client, peer, text string) *Message {
	t.Helper()
	h, err := c.History(context.Background(), peer, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range h {
		if m.Text == text {
			return m
		}
	}
	t.Fatalf("no message %q with %s", text, peer)
	return nil
}

// TestLinkWithoutHistory: without history the new device starts empty.
func TestLinkWithoutHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	_, bobEvents := r.enroll(t, code, "bob", true)
	if _, err := alice.Send(ctx, "bob", "before"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bobEvents, EventMessage)
	phone, sum := linkWith(t, r.url, alice, ApproveOptions{}, nil)
	if sum != nil {
		t.Fatalf("summary %+v without history", sum)
	}
	if _, err := phone.ImportHistory(ctx); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("import: %v", err)
	}
	if cs, err := phone.Contacts(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("contacts %+v %v", cs, err)
	}
	if h, err := phone.History(ctx, "bob", 0); err != nil || len(h) != 0 {
		t.Fatalf("history %+v %v", h, err)
	}
}

// TestLinkTamperedHistory: a byte flipped in the history blob at the relay
// is detected; nothing is imported and the pending transfer is dropped.
func TestLinkTamperedHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	_, bobEvents := r.enroll(t, code, "bob", true)
	for i := range 5 {
		if _, err := alice.Send(ctx, "bob", fmt.Sprint("message ", i)); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, bobEvents, EventMessage)
	}
	before := map[string]bool{}
	for _, f := range r.blobFiles(t) {
		before[f] = true
	}
	phone, sum := linkWith(t, r.url, alice, ApproveOptions{History: true}, nil)
	if sum == nil || sum.Messages != 5 {
		t.Fatalf("summary %+v", sum)
	}
	var blob string
	for _, f := range r.blobFiles(t) {
		if !before[f] {
			blob = f
		}
	}
	if blob == "" {
		t.Fatal("no history blob on the relay")
	}
	raw, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) <= sum.Bytes || bytes.Contains(raw, []byte("message 0")) || bytes.Contains(raw, []byte("bob")) {
		t.Fatal("the relay's blob is not an opaque ciphertext")
	}
	raw[len(raw)/2] ^= 0x01
	if err := os.WriteFile(blob, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.ImportHistory(ctx); !errors.Is(err, ErrHistoryTampered) {
		t.Fatalf("import of a tampered blob: %v", err)
	}
	if cs, err := phone.Contacts(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("contacts after refusal %+v %v", cs, err)
	}
	if h, err := phone.History(ctx, "bob", 0); err != nil || len(h) != 0 {
		t.Fatalf("history after refusal %+v %v", h, err)
	}
	if pending, err := phone.HistoryPending(ctx); err != nil || pending {
		t.Fatalf("still pending: %v %v", pending, err)
	}
	// No import, no report: the blob stays until the relay's TTL.
	if _, err := os.Stat(blob); err != nil {
		t.Fatalf("history blob: %v", err)
	}
}

// TestLinkHistoryAttachments: a file received before the link downloads on
// the new device (its pointer travels with the history); a view-once file
// arrives as already opened there, and the approving device can still
// open it once.
func TestLinkHistoryAttachments(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enroll(t, code, "alice", true)
	bob, _ := r.enroll(t, code, "bob", true)
	path, want := writeRandomFile(t, t.TempDir(), 100<<10)
	send := func(o FileOptions) *Message {
		t.Helper()
		sent, err := bob.SendFile(ctx, "alice", path, o)
		if err != nil {
			t.Fatal(err)
		}
		if e := waitEvent(t, aliceEvents, EventMessage); !bytes.Equal(e.Message.ID, sent.ID) {
			t.Fatalf("alice got %+v", e.Message)
		}
		return sent
	}
	file := send(FileOptions{Caption: "the file"})
	once := send(FileOptions{ViewOnce: true, Caption: "once"})

	phone, sum := linkWith(t, r.url, alice, ApproveOptions{History: true}, nil)
	if sum == nil || sum.Messages != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if _, err := phone.ImportHistory(ctx); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "got.bin")
	if _, _, err := phone.Download(ctx, file.ID, DownloadOptions{Out: out}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileDigest(t, out), want) {
		t.Fatal("the phone's copy differs")
	}
	if _, _, err := phone.Download(ctx, once.ID, DownloadOptions{Stream: &bytes.Buffer{}}); !errors.Is(err, ErrViewedOnce) {
		t.Fatalf("view-once on the phone: %v", err)
	}
	if m := mustFind(t, phone, "bob", "once"); m.Attachment == nil || !m.Attachment.ViewOnce || !m.Attachment.Opened {
		t.Fatalf("view-once record on the phone: %+v", m.Attachment)
	}
	var buf bytes.Buffer
	if _, _, err := alice.Download(ctx, once.ID, DownloadOptions{Stream: &buf}); err != nil {
		t.Fatalf("view-once on the laptop: %v", err)
	}
}

// TestApproveFailureDeletesHistoryBlob: when the approval cannot be
// delivered (the new device gave up), the uploaded history is taken down.
func TestApproveFailureDeletesHistoryBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	_, bobEvents := r.enroll(t, code, "bob", true)
	if _, err := alice.Send(ctx, "bob", "hello"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bobEvents, EventMessage)
	l, err := BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	linkCode := l.Code()
	l.Close()
	if _, err := alice.ApproveLinkWith(ctx, linkCode, ApproveOptions{History: true}); err == nil {
		t.Fatal("approval of an abandoned link succeeded")
	}
	if left := r.blobFiles(t); len(left) != 0 {
		t.Fatalf("history blob left on the relay: %v", left)
	}
}
