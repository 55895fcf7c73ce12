package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/client/content"
	"sotto/client/keylog"
	"sotto/signal/session"
)

// contactOf returns how c holds user's identity.
func contactOf(t *testing.T, c *Client, user string) Contact {
	t.Helper()
	cs, err := c.Contacts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range cs {
		if x.User == user {
			return x
		}
	}
	t.Fatalf("no contact %s in %+v", user, cs)
	return Contact{}
}

// TestHistoryImportKeepsOwnDeviceKeyAgainstTOFU: between the link and the
// history import, the new device knows no contact, so a hostile relay can
// make it trust a key of its own for one (a forged first message, which
// goes through SaveIdentity as below, or a served key). The history's
// record, from an own device where the user verified the real key, must
// then not be dropped in favour of the relay's key: the relay's key counts
// as a change (sending blocked until the user verifies), and a key the
// approving device itself had not accepted stays not accepted.
func TestHistoryImportKeepsOwnDeviceKeyAgainstTOFU(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 3, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	_, bobEvents := r.enroll(t, code, "bob", true)
	_, carolEvents := r.enroll(t, code, "carol", true)
	for _, p := range []struct {
		user   string
		events chan Event
	}{{"bob", bobEvents}, {"carol", carolEvents}} {
		if _, err := alice.Send(ctx, p.user, "hi"); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, p.events, EventMessage)
	}
	if err := alice.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	fakeKey := func() []byte {
		id, err := session.GenerateIdentityKeyPair(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return id.PublicKey().Serialize()
	}
	// The relay already served carol's laptop a key of its own: the
	// laptop shows the change and has not accepted it.
	relayCarol := fakeKey()
	if _, err := alice.sigStores(alice.db).SaveIdentity(ctx, session.Address{Name: "carol", DeviceID: 1}, relayCarol); err != nil {
		t.Fatal(err)
	}
	if c := contactOf(t, alice, "carol"); !c.Changed {
		t.Fatalf("laptop: carol %+v", c)
	}

	phone, _ := linkWith(t, r.url, alice, ApproveOptions{History: true}, nil)
	// Before the import, the relay makes the phone trust its keys.
	ss := phone.sigStores(phone.db)
	if _, err := ss.SaveIdentity(ctx, session.Address{Name: "bob", DeviceID: 1}, fakeKey()); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.SaveIdentity(ctx, session.Address{Name: "carol", DeviceID: 1}, relayCarol); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.ImportHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if c := contactOf(t, phone, "bob"); !c.Changed || c.Verified {
		t.Errorf("phone: bob %+v: the key the relay planted before the import is trusted over the verified one from the own device", c)
	}
	if c := contactOf(t, phone, "carol"); !c.Changed {
		t.Errorf("phone: carol %+v: a key the approving device had not accepted is trusted", c)
	}
}

// TestDeviceOrdersFromContactsAndNewerClients: a device order of an
// action this client does not know (from a newer client of the account)
// is ignored with a log line, not reported as an error; and a contact
// cannot order a device of this account about: a HISTORY_IMPORTED from
// bob naming alice's exported history blob leaves the blob in place, and
// the new device imports it afterwards.
func TestDeviceOrdersFromContactsAndNewerClients(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	logs := &syncBuffer{}
	events := make(chan Event, 100)
	alice, err := Enroll(ctx, EnrollParams{Dir: filepath.Join(t.TempDir(), "alice"), Passphrase: []byte("pw"), Invitation: r.inviteCode(t, code, "alice"), DeviceName: "laptop"}, &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: func(e Event) { events <- e },
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alice.Close() })
	if err := alice.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	bob, bobEvents := r.enroll(t, code, "bob", true)
	if _, err := alice.Send(ctx, "bob", "hi"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bobEvents, EventMessage)
	phone, sum := linkWith(t, r.url, alice, ApproveOptions{History: true}, nil)
	if sum == nil || sum.Messages != 1 {
		t.Fatalf("summary %+v", sum)
	}
	exports, err := alice.db.List(ctx, tblHistoryExports)
	if err != nil || len(exports) != 1 {
		t.Fatalf("exports %d %v", len(exports), err)
	}
	blobID := exports[0].Key

	// An order of an action from a newer client, from the own phone.
	future := &content.Content{Version: content.Version, Id: bytes.Repeat([]byte{7}, content.IDSize), SentAtMs: time.Now().UnixMilli(),
		Body: &content.Content_DeviceOrder{DeviceOrder: &content.DeviceOrder{Action: content.DeviceOrder_Action(99), BlobId: blobID}}}
	if _, err := phone.sendContent(ctx, "alice", future, future.Id); err != nil {
		t.Fatal(err)
	}
	// A contact's HISTORY_IMPORTED naming alice's blob.
	forged, err := content.NewHistoryImported(blobID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.sendContent(ctx, "alice", forged, forged.Id); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Send(ctx, "alice", "after the orders"); err != nil {
		t.Fatal(err)
	}
	for {
		e := waitEvent2(t, events, EventMessage, EventError)
		if e.Kind == EventError {
			t.Fatalf("error event: %v", e.Err)
		}
		if e.Message.Text == "after the orders" {
			break
		}
	}
	if !strings.Contains(logs.String(), "device order of an unknown action ignored") {
		t.Errorf("no log line for the unknown order:\n%s", logs.String())
	}
	if _, err := alice.db.Get(ctx, tblHistoryExports, blobID); err != nil {
		t.Fatalf("a contact's order dropped the export record: %v", err)
	}
	got, err := phone.ImportHistory(ctx)
	if err != nil {
		t.Fatalf("import after a contact's order: %v", err)
	}
	if got.Messages != 1 {
		t.Fatalf("imported %+v", got)
	}
}

// waitEvent2 waits for an event of either kind.
func waitEvent2(t *testing.T, events chan Event, a, b EventKind) Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == a || e.Kind == b {
				return e
			}
		case <-timeout:
			t.Fatalf("no event of kind %d or %d", a, b)
		}
	}
}

// TestLinkPinsTheApproversLogKey: the new device's key transparency log
// key comes from the approving own device, sealed in the provisioning
// message, not from the relay's link response alone: a relay that answers
// the link with another log key (to keep the new device in a private view
// of the log) is refused.
func TestLinkPinsTheApproversLogKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 1, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	pinned, err := alice.LogPublicKey(ctx)
	if err != nil || len(pinned) == 0 {
		t.Fatalf("laptop pinned no log key (%v)", err)
	}
	// Honest relay: the phone pins the laptop's key.
	phone, _ := linkWith(t, r.url, alice, ApproveOptions{}, nil)
	if got, err := phone.LogPublicKey(ctx); err != nil || !bytes.Equal(got, pinned) {
		t.Fatalf("phone pinned %x (%v), laptop %x", got, err, pinned)
	}
	// The laptop's pinned key differs from what the relay answers the
	// link with (as when the relay swaps the key in its response).
	other := bytes.Repeat([]byte{9}, len(pinned))
	if err := keylog.PinLogKey(ctx, alice.db, other); err != nil {
		t.Fatal(err)
	}
	l, err := BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tablet")
	tablet, err := l.Finish(ctx, dir, []byte("pw"), "tablet", &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase})
	if err == nil {
		got, _ := tablet.LogPublicKey(ctx)
		tablet.Close()
		t.Fatalf("linked with the relay's log key %x, not the approving device's %x", got, other)
	}
	if !errors.Is(err, ErrLinkLogKey) {
		t.Fatalf("link: %v", err)
	}
}

// TestHistoryImportKeepsAnotherMessagesFile: file records are keyed by
// message id alone. A contact who sends the new device, before the
// import, a file under the id of an own file message in the history (the
// contact knows it: it was sent to them) keeps its record, as it would if
// it arrived after the import (applyAttachment): the import does not
// write over it, and that record's downloads stay tracked.
func TestHistoryImportKeepsAnotherMessagesFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	bob, bobEvents := r.enroll(t, code, "bob", true)
	path, _ := writeRandomFile(t, t.TempDir(), 10<<10)
	sent, err := alice.SendFile(ctx, "bob", path, FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bobEvents, EventMessage)
	phone, sum := linkWith(t, r.url, alice, ApproveOptions{History: true}, nil)
	if sum == nil || sum.Messages != 1 {
		t.Fatalf("summary %+v", sum)
	}

	bobPath, bobWant := writeRandomFile(t, t.TempDir(), 12<<10)
	f, err := os.Open(bobPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ptr, _, err := bob.blobs().Upload(ctx, f, 12<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	ptr.FileName = "b.bin"
	ct := &content.Content{Version: content.Version, Id: sent.ID, SentAtMs: time.Now().UnixMilli(),
		Body: &content.Content_Attachment{Attachment: ptr}}
	if _, err := bob.sendContent(ctx, "alice", ct, ct.Id); err != nil {
		t.Fatal(err)
	}
	phone.Disconnect()
	if err := phone.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		h, err := phone.History(ctx, "bob", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) == 1 && h[0].From == "bob" {
			break
		}
		if i == 800 {
			t.Fatalf("the phone never stored bob's file: %s", describe(h))
		}
		time.Sleep(25 * time.Millisecond)
	}
	if _, err := phone.ImportHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if h, err := phone.History(ctx, "bob", 0); err != nil || len(h) != 2 {
		t.Fatalf("phone history %v:\n%s", err, describe(h))
	}
	out := filepath.Join(t.TempDir(), "got.bin")
	_, m, err := phone.Download(ctx, sent.ID, DownloadOptions{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "bob" || !bytes.Equal(fileDigest(t, out), bobWant) {
		t.Fatalf("the import wrote over bob's file record: it now opens %s's file", m.From)
	}
}
