package client

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"sotto/transparency"
)

// A foreign-key alarm found by one device of an account reaches its other
// devices, which check the evidence and keep it. Switched off (no report
// to siblings), the phone holds only what its own audit finds, never the
// laptop's report, and this test fails.
func TestForeignKeyAlarmReachesOwnDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startKTRelay(t, withBlobs(t))
	code := r.code(t, 5, time.Hour)
	bob, bev := r.enroll(t, code, "bob", true)
	phone, _ := linkWith(t, r.url, bob, ApproveOptions{}, nil)
	phoneEvents := make(chan Event, 100)
	phone.opts.OnEvent = func(e Event) { phoneEvents <- e }
	phone.Disconnect()
	if err := phone.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AuditKeyLog(ctx); err != nil {
		t.Fatal(err)
	}
	leaf, err := (&transparency.Binding{Kind: transparency.KindReplace, Username: "bob", IdentityKey: fakeIdentity(t),
		TimestampMS: time.Now().UnixMilli()}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.store.AppendLogLeaf(ctx, "bob", leaf); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AuditKeyLog(ctx); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, bev, EventTransparencyAlarm); !isAlarm(e.Err, AlarmForeignKey) {
		t.Fatalf("laptop: %v", e.Err)
	}
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-phoneEvents:
			var a *TransparencyAlarm
			if e.Kind == EventTransparencyAlarm && errors.As(e.Err, &a) && a.Kind == AlarmForeignKey &&
				strings.Contains(a.Detail, "your device 1 found") {
				for _, st := range alarmsOf(t, phone) {
					if strings.Contains(st.Detail, "your device 1 found") {
						return
					}
				}
				t.Fatal("the laptop's report was not stored on the phone")
			}
		case <-deadline:
			t.Fatal("the phone never heard of the laptop's alarm")
		}
	}
}

func isAlarm(err error, kind AlarmKind) bool {
	var a *TransparencyAlarm
	return errors.As(err, &a) && a.Kind == kind
}
