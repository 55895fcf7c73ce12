package call

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// TestDirectCallAllocatesNothing is the attack of a relay (or an observer
// of its TURN port) learning who calls when: a call whose direct path
// works asks for no TURN credentials and allocates nothing.
func TestDirectCallAllocatesNothing(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{})
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), Options{})
	caller, callee := talkPair(t, alice, bob)
	for _, c := range []*Call{caller, callee} {
		if l, rm, err := c.CandidatePair(); err != nil || l != webrtc.ICECandidateTypeHost || rm != webrtc.ICECandidateTypeHost {
			t.Errorf("selected pair %s -> %s (%v), want host -> host", l, rm, err)
		}
	}
	hangUp(t, caller, callee)
	if n := r.allocs.Load(); n != 0 {
		t.Fatalf("a direct call made %d TURN allocations", n)
	}
}

// TestCallFallsBackToTURN: when the direct path fails, the call goes on
// through the relay's TURN server (a new offer and answer, end to end).
func TestCallFallsBackToTURN(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{})
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), Options{})
	alice.m.noDirect, bob.m.noDirect = true, true
	caller, callee := talkPair(t, alice, bob)
	// The only addresses either side learned are the TURN allocations (a
	// host candidate may reach the peer's relayed address, and then shows
	// as peer-reflexive on the other side).
	for _, c := range []*Call{caller, callee} {
		l, rm, err := c.CandidatePair()
		if err != nil || (l != webrtc.ICECandidateTypeRelay && rm != webrtc.ICECandidateTypeRelay && rm != webrtc.ICECandidateTypePrflx) {
			t.Errorf("selected pair %s -> %s (%v), want one through TURN", l, rm, err)
		}
	}
	if n := r.allocs.Load(); n < 2 {
		t.Errorf("%d TURN allocations after the fallback, want 2", n)
	}
	hangUp(t, caller, callee)
}

// TestTURNCredentialNamesNoOne: the credential a device gets (its username
// goes in clear to the TURN server) names neither its account nor its
// device.
func TestTURNCredentialNamesNoOne(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", nil, Options{})
	tc, err := alice.c.TURNCredentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	exp, nonce, ok := strings.Cut(tc.Username, ":")
	if _, err := strconv.ParseInt(exp, 10, 64); !ok || err != nil || len(nonce) < 22 {
		t.Fatalf("username %q is not <expiry>:<nonce>", tc.Username)
	}
	for _, leak := range []string{"alice", "." + strconv.Itoa(int(alice.c.DeviceID())), hex.EncodeToString(alice.c.IdentityKey())} {
		if strings.Contains(tc.Username, leak) {
			t.Fatalf("TURN username %q names %q", tc.Username, leak)
		}
	}
}

// talkPair places a call from a to b, b answers, and both connect.
func talkPair(t *testing.T, a, b *device) (caller, callee *Call) {
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
	return caller, callee
}

func hangUp(t *testing.T, caller, callee *Call) {
	t.Helper()
	if err := caller.Hangup(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitDone(t, caller, "caller")
	waitDone(t, callee, "callee")
}
