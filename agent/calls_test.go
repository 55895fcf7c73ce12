package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sotto/agent/api"
	"sotto/client/call"
)

// callsOn has an agent carry calls, with media on loopback only (both
// agents run on this machine).
func callsOn(c *Config) { c.Calls = &call.Options{LoopbackOnly: true, PCMUOnly: true} }

// nextCall waits for the next event of type typ on st, for call id.
func nextCall(t *testing.T, st *api.Stream, typ string) *api.Call {
	t.Helper()
	ev := next(t, st, typ)
	if ev.Call == nil {
		t.Fatalf("%s without a call", typ)
	}
	return ev.Call
}

// A call between two agents, driven through their APIs: the callee's
// front end learns of it from the event stream, answers it, both sides
// see it connect, and the caller's hang-up ends it on both; the callee
// saved the recording its answer asked for.
func TestAgentsCall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	r := startRelay(t)
	alice := startAgentConfig(t, r.enroll(t, "alice"), callsOn)
	bob := startAgentConfig(t, r.enroll(t, "bob"), callsOn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Both know each other first (a call signal travels in a session).
	if _, err := alice.api.Send(ctx, "bob", "calling you", nil); err != nil {
		t.Fatal(err)
	}
	bst, err := bob.api.Events(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bst.Close()
	next(t, bst, api.EventMessage)
	ast, err := alice.api.Events(ctx, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ast.Close()

	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.wav")
	tone := make([]int16, 8000) // a second at 8 kHz
	for i := range tone {
		tone[i] = int16((i % 40) * 500)
	}
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := call.WriteWAV(f, tone, 8000); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := bob.api.Dial(ctx, api.DialRequest{User: "bob"}); err == nil {
		t.Fatal("bob called himself")
	}
	c, err := alice.api.Dial(ctx, api.DialRequest{User: "bob", AudioIn: in})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Outgoing || c.Peer != "bob" {
		t.Fatalf("dialled %+v", c)
	}
	inc := nextCall(t, bst, api.EventCallIncoming)
	if inc.Peer != "alice" || inc.Outgoing || string(inc.ID) != string(c.ID) || inc.State != "ringing" {
		t.Fatalf("incoming %+v", inc)
	}
	if cs, err := bob.api.Calls(ctx); err != nil || len(cs) != 1 {
		t.Fatalf("bob's calls: %v %+v", err, cs)
	}
	if _, err := bob.api.Answer(ctx, inc.ID, api.AnswerRequest{AudioOut: "relative.wav"}); !api.IsKind(err, api.KindBadRequest) {
		t.Fatalf("relative audio_out: %v", err)
	}
	if _, err := bob.api.Answer(ctx, inc.ID, api.AnswerRequest{AudioOut: out}); err != nil {
		t.Fatal(err)
	}
	nextCall(t, bst, api.EventCallConnected)
	nextCall(t, ast, api.EventCallConnected)
	if err := alice.api.Hangup(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if e := nextCall(t, ast, api.EventCallEnded); e.State != "ended" || e.Error != nil {
		t.Fatalf("alice's end %+v", e)
	}
	if e := nextCall(t, bst, api.EventCallEnded); e.State != "ended" || e.Error != nil {
		t.Fatalf("bob's end %+v", e)
	}
	// The recording is saved (what it holds depends on how long audio
	// flowed: client/call's tests check the audio itself).
	if _, _, err := call.ReadWAVFileRate(out); err != nil {
		t.Fatal(err)
	}
	if err := bob.api.Hangup(ctx, c.ID); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("hang-up of an ended call: %v", err)
	}
	// The call is in both histories.
	hist, err := bob.api.History(ctx, "alice", 0)
	if err != nil || len(hist) < 2 || hist[len(hist)-1].Call == nil {
		t.Fatalf("bob's history: %v %+v", err, hist)
	}
}

// An agent without calls says so.
func TestAgentWithoutCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	r := startRelay(t)
	bob := startAgent(t, r.enroll(t, "bob"))
	if _, err := bob.api.Calls(context.Background()); !api.IsKind(err, api.KindUnavailable) {
		t.Fatalf("calls: %v", err)
	}
}
