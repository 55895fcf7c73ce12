package client

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// TestSingleDeviceSendsFetchNoDeviceListEachTime: a single-device account
// fetches its own (empty) device list once per connection, not once per
// send; linking a device drops the list, so the next send fetches it and
// the new device gets the transcript.
func TestSingleDeviceSendsFetchNoDeviceListEachTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startRelay(t)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	_, bev := r.enroll(t, code, "bob", true)
	var lists atomic.Int32
	alice.hooks.getDevices = func() { lists.Add(1) }
	for i := range 5 {
		if _, err := alice.Send(ctx, "bob", "hi"); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, bev, EventMessage)
		if i == 0 && lists.Load() != 2 {
			t.Fatalf("the first send fetched %d device lists, want 2 (bob's and the own)", lists.Load())
		}
	}
	if n := lists.Load(); n != 2 {
		t.Fatalf("5 sends fetched %d device lists, want 2", n)
	}

	// A new connection checks the own list again, once.
	alice.Disconnect()
	if err := alice.Connect(ctx, ConnectOptions{}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := alice.Send(ctx, "bob", "again"); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, bev, EventMessage)
	}
	if n := lists.Load(); n != 3 {
		t.Fatalf("after a reconnect: %d device lists, want 3", n)
	}

	// A device linked from here drops the list: the next send fetches it
	// and the phone gets the transcript.
	l, err := BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	phoneEvents := make(chan Event, 100)
	phone, err := l.Finish(ctx, filepath.Join(t.TempDir(), "phone"), []byte("pw"), "phone", &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: func(e Event) { phoneEvents <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	if err := phone.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, "bob", "seen on the phone"); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, phoneEvents, EventMessage); !e.Message.Synced || e.Message.Text != "seen on the phone" {
		t.Fatalf("phone got %+v", e.Message)
	}
	if n := lists.Load(); n != 4 {
		t.Fatalf("after the link: %d device lists, want 4", n)
	}
}
