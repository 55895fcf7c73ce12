package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sotto/client/content"
	"sotto/client/org"
)

// waitTimerChange waits for m to record a timer change and returns its
// seconds as recorded.
func waitTimerChange(t *testing.T, m *member) uint32 {
	t.Helper()
	for {
		if e := waitEvent(t, m.events, EventMessage); e.Message.Kind == KindTimer {
			return e.Message.TimerSeconds
		}
	}
}

func TestOrgPolicyEnforced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	// Carol's device does not obey the policy (a modified client, or one
	// that has not received it yet): what it sends goes out through
	// sendContent and sendAndSync, past her own checks. Bob's checks are
	// what this test is about.
	carol := w.enrollAt(t, w.r.url, "carol", 30*24*time.Hour).c
	if _, err := carol.Send(ctx, "bob", "hello bob"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bob.events, EventMessage)

	// Before any policy everything is allowed.
	if err := bob.c.SetTimer(ctx, "carol", 10*time.Second); err != nil {
		t.Fatalf("a timer with no policy: %v", err)
	}
	if _, err := w.admin.PublishPolicy(ctx, &org.Policy{AttachmentsDisabled: true, CallsDisabled: true,
		DisappearingMinSeconds: 60, DisappearingMaxSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, bob.events, EventOrgPolicy)

	// Attachments.
	path := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(path, []byte("quarterly figures"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.c.SendFile(ctx, "carol", path, FileOptions{}); !errors.Is(err, ErrForbiddenByPolicy) {
		t.Fatalf("SendFile under a no-attachments policy: %v", err)
	}

	// Calls: placing (offer) and answering are refused; declining and
	// hanging up still go out.
	for _, k := range []content.CallSignal_Kind{content.CallSignal_OFFER, content.CallSignal_ANSWER, content.CallSignal_ICE} {
		if err := bob.c.SendCallSignal(ctx, "carol", &content.CallSignal{Kind: k, CallId: []byte("call-1")}); !errors.Is(err, ErrForbiddenByPolicy) {
			t.Fatalf("call signal %v under a no-calls policy: %v", k, err)
		}
	}
	if err := bob.c.SendCallSignal(ctx, "carol", &content.CallSignal{Kind: content.CallSignal_REJECT, CallId: []byte("call-1")}); err != nil {
		t.Fatalf("reject under a no-calls policy: %v", err)
	}
	// An incoming offer does not ring: it never reaches the call manager.
	offer := &content.Content{Version: content.Version, Id: []byte("offer-2-id-16byt"), SentAtMs: time.Now().UnixMilli(),
		Body: &content.Content_CallSignal{CallSignal: &content.CallSignal{Kind: content.CallSignal_OFFER, CallId: []byte("call-2"), Sdp: "v=0"}}}
	if _, err := carol.sendContent(ctx, "bob", offer, offer.Id); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Send(ctx, "bob", "after the offer"); err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		select {
		case e := <-bob.events:
			if e.Kind == EventCallSignal {
				t.Fatalf("an offer reached bob's call manager under a no-calls policy: %+v", e.Call)
			}
			done = e.Kind == EventMessage && e.Message.Text == "after the offer"
		case <-time.After(20 * time.Second):
			t.Fatal("the message after the offer never came")
		}
	}

	// Disappearing timers: setting one outside 1 min .. 1 h is refused.
	for _, d := range []time.Duration{0, 10 * time.Second, 2 * time.Hour} {
		if err := bob.c.SetTimer(ctx, "carol", d); !errors.Is(err, ErrForbiddenByPolicy) {
			t.Fatalf("SetTimer(%v) outside the policy's range: %v", d, err)
		}
	}
	if err := bob.c.SetTimer(ctx, "carol", 30*time.Minute); err != nil {
		t.Fatalf("SetTimer within the range: %v", err)
	}
	if got := waitTimerChange(t, bob); got != 1800 {
		t.Fatalf("bob's own timer change recorded as %d s", got)
	}
	// A received timer outside the range is clamped into it.
	for _, c := range []struct {
		set  time.Duration
		want time.Duration
	}{
		{7 * 24 * time.Hour, time.Hour},
		{5 * time.Second, time.Minute},
		{0, time.Hour}, // off is not allowed: the longest allowed
		{20 * time.Minute, 20 * time.Minute},
	} {
		ct, err := content.NewTimerChange(c.set, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := carol.sendAndSync(ctx, "bob", ct); err != nil {
			t.Fatal(err)
		}
		if got := waitTimerChange(t, bob); time.Duration(got)*time.Second != c.want {
			t.Fatalf("received timer %v recorded as %d s, want %v", c.set, got, c.want)
		}
		if got, err := bob.c.Timer(ctx, "carol"); err != nil || got != c.want {
			t.Fatalf("received timer %v: bob's timer is %v (%v), want %v", c.set, got, err, c.want)
		}
	}
	// Messages bob sends carry the clamped timer.
	m, err := bob.c.Send(ctx, "carol", "disappearing")
	if err != nil {
		t.Fatal(err)
	}
	if m.ExpireSeconds != 1200 {
		t.Fatalf("bob's message expires after %d s, want 1200", m.ExpireSeconds)
	}
}
