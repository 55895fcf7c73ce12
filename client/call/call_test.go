package call

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"sotto/client/content"
)

var (
	aliceFreqs = []float64{500, 1300}
	bobFreqs   = []float64{800, 1900}
	toneLen    = 1500 * time.Millisecond
)

// checkHeard asserts that rx carries the tones of want (each at least
// 20 dB above the other side's tones and a control frequency) for about
// toneLen.
func checkHeard(t *testing.T, who string, rx []int16, want, other []float64) {
	t.Helper()
	if len(rx) < 8000 {
		t.Fatalf("%s received only %d samples", who, len(rx))
	}
	noise := goertzel(rx, 3100)
	for _, f := range other {
		noise = max(noise, goertzel(rx, f))
	}
	for _, f := range want {
		p := goertzel(rx, f)
		if p < 100*noise {
			t.Errorf("%s: power at %.0f Hz is %.3g, not 20 dB above the strongest other tone (%.3g)", who, f, p, noise)
		}
	}
	span := toneSpan(rx)
	if d := span - toneLen; d < -200*time.Millisecond || d > 200*time.Millisecond {
		t.Errorf("%s heard the tone for %v, sent %v", who, span, toneLen)
	}
	t.Logf("%s: %d samples, tone for %v", who, len(rx), span)
}

// talk places a call from a to b (b answers), lets the tones play and has
// hangup end it.
func talk(t *testing.T, a, b *device, hangupByCaller bool) (caller, callee *Call) {
	t.Helper()
	ctx := context.Background()
	caller, err := a.m.Dial(ctx, b.c.Username())
	if err != nil {
		t.Fatal(err)
	}
	callee = waitCall(t, b.incoming, "the incoming call")
	if err := callee.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, caller, "caller")
	waitConnected(t, callee, "callee")
	// Wait until both tones have fully arrived (plus a little silence).
	deadline := time.Now().Add(20 * time.Second)
	for len(heard(a.rec)) < 8000*2 || len(heard(b.rec)) < 8000*2 {
		if time.Now().After(deadline) {
			t.Fatalf("audio stalled: %d and %d samples", len(heard(a.rec)), len(heard(b.rec)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	end := caller
	if !hangupByCaller {
		end = callee
	}
	if err := end.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, caller, "caller")
	waitDone(t, callee, "callee")
	if caller.Err() != nil || callee.Err() != nil {
		t.Fatalf("hang-up ended with errors: caller %v, callee %v", caller.Err(), callee.Err())
	}
	return caller, callee
}

func TestCallAudioBothWays(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{})
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), Options{})
	caller, _ := talk(t, alice, bob, true)
	checkHeard(t, "bob", heard(bob.rec), aliceFreqs, bobFreqs)
	checkHeard(t, "alice", heard(alice.rec), bobFreqs, aliceFreqs)
	for _, d := range []*device{alice, bob} {
		peer := "bob"
		if d == bob {
			peer = "alice"
		}
		if rec := lastCall(t, d, peer); rec.Outcome != "answered" || rec.Duration <= 0 || !bytesEqual(rec.ID, caller.ID) {
			t.Errorf("%s's history: %+v", d.c.Username(), rec)
		}
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

func TestCallRelayOnly(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			relayedCall(t, startRelay(t), Options{RelayOnly: true, TURNTransport: transport})
		})
	}
}

// relayedCall calls bob from alice, both with o (relay only), and checks
// that the media goes relay to relay through r's TURN server, both ways.
func relayedCall(t *testing.T, r *testRelay, o Options) {
	t.Helper()
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), o)
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), o)
	ctx := context.Background()
	caller, err := alice.m.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	callee := waitCall(t, bob.incoming, "the incoming call")
	if err := callee.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	waitConnected(t, caller, "caller")
	waitConnected(t, callee, "callee")
	for _, c := range []*Call{caller, callee} {
		l, rm, err := c.CandidatePair()
		if err != nil {
			t.Fatal(err)
		}
		if l != webrtc.ICECandidateTypeRelay || rm != webrtc.ICECandidateTypeRelay {
			t.Errorf("selected pair %s -> %s, want relay -> relay", l, rm)
		}
	}
	if r.turn.AllocationCount() < 2 {
		t.Errorf("TURN server has %d allocations", r.turn.AllocationCount())
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(heard(alice.rec)) < 16000 || len(heard(bob.rec)) < 16000 {
		if time.Now().After(deadline) {
			t.Fatal("audio stalled")
		}
		time.Sleep(100 * time.Millisecond)
	}
	callee.Hangup(ctx)
	waitDone(t, caller, "caller")
	checkHeard(t, "bob", heard(bob.rec), aliceFreqs, bobFreqs)
	checkHeard(t, "alice", heard(alice.rec), bobFreqs, aliceFreqs)
}

func TestCallHangupByCallee(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{})
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), Options{})
	talk(t, alice, bob, false)
	if rec := lastCall(t, alice, "bob"); rec.Outcome != "answered" || !rec.Outgoing {
		t.Errorf("alice's history: %+v", rec)
	}
}

// A relay cannot rewrite the fingerprint (the signalling is end-to-end
// encrypted); a man in the middle who could (simulated here by altering
// the decrypted offer) makes the DTLS handshake fail with a clear reason.
func TestCallFingerprintRewritten(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", nil, Options{})
	bob := r.enroll(t, "bob", nil, Options{})
	bob.m.tamper = func(from string, s *content.CallSignal) {
		if s.Kind != content.CallSignal_OFFER {
			return
		}
		fp := sdpFingerprint(s.Sdp)
		forged := strings.Repeat("AB:", 31) + "AB"
		if fp == "" || fp == forged {
			t.Errorf("offer without a usable fingerprint: %q", fp)
		}
		s.Sdp = strings.Replace(s.Sdp, "sha-256 "+fp, "sha-256 "+forged, 1)
		if !strings.Contains(s.Sdp, forged) {
			s.Sdp = strings.Replace(s.Sdp, "sha-256 "+strings.ToLower(fp), "sha-256 "+forged, 1)
		}
	}
	ctx := context.Background()
	caller, err := alice.m.Dial(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	callee := waitCall(t, bob.incoming, "the incoming call")
	if err := callee.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, callee, "callee")
	waitDone(t, caller, "caller")
	if !errors.Is(callee.Err(), ErrFingerprintMismatch) {
		t.Errorf("callee ended with %v, want %v", callee.Err(), ErrFingerprintMismatch)
	}
	if caller.Err() == nil {
		t.Error("caller's call ended without an error")
	}
	select {
	case <-caller.Connected():
		t.Error("the caller connected to an impostor")
	default:
	}
	if rec := lastCall(t, bob, "alice"); rec.Outcome != "failed" || !strings.Contains(rec.Reason, "man in the middle") {
		t.Errorf("bob's history: %+v", rec)
	}
	t.Logf("callee: %v; caller: %v", callee.Err(), caller.Err())
}
