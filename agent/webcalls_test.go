package agent

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"sotto/agent/api"
	"sotto/client/content"
)

// The agent's side of calls in the browser, driven through the API as a
// page drives it (the browser tests in package web run the media).

// testFP is a random sha-256 fingerprint.
func testFP() string {
	b := make([]byte, 32)
	rand.Read(b)
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("%02X", x)
	}
	return strings.Join(parts, ":")
}

// testSDP is an audio SDP naming the certificate fp ("": none).
func testSDP(fp string) string {
	s := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\n"
	if fp != "" {
		s += "a=fingerprint:sha-256 " + fp + "\r\n"
	}
	return s + "a=setup:actpass\r\na=rtpmap:0 PCMU/8000\r\n"
}

// nextWeb waits for the next web call event of type typ.
func nextWeb(t *testing.T, st *api.WebCallStream, typ string) *api.WebCall {
	t.Helper()
	for {
		ev, err := st.Next()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if ev.Type == typ {
			return ev.Call
		}
	}
}

// webPair is alice and bob, each with an agent carrying calls and a page
// (a web call stream) open.
type webPair struct {
	alice, bob *runningAgent
	as, bs     *api.WebCallStream
}

func startWebPair(t *testing.T, ctx context.Context) *webPair {
	t.Helper()
	r := startRelay(t)
	w := &webPair{alice: startAgentConfig(t, r.enroll(t, "alice"), callsOn), bob: startAgentConfig(t, r.enroll(t, "bob"), callsOn)}
	bst, err := w.bob.api.Events(ctx, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bst.Close()
	if _, err := w.alice.api.Send(ctx, "bob", "hi", nil); err != nil {
		t.Fatal(err)
	}
	next(t, bst, api.EventMessage)
	if _, err := w.bob.api.Send(ctx, "alice", "hi", nil); err != nil {
		t.Fatal(err)
	}
	if w.as, err = w.alice.api.WebCallEvents(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.as.Close() })
	if w.bs, err = w.bob.api.WebCallEvents(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.bs.Close() })
	return w
}

// A call set up between two pages: the offer and the answer arrive as the
// other page handed them over, byte for byte; the pages' reports of their
// DTLS fingerprints make the call active; a hang-up ends it on both.
func TestWebCallSignalling(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := startWebPair(t, ctx)
	fa, fb := testFP(), testFP()
	offer, answer := testSDP(fa), testSDP(fb)
	c, err := w.alice.api.WebDial(ctx, api.WebDialRequest{User: "bob", SDP: offer})
	if err != nil {
		t.Fatal(err)
	}
	in := nextWeb(t, w.bs, api.WebCallIncoming)
	if in.Peer != "alice" || in.RemoteSDP != offer || string(in.ID) != string(c.ID) {
		t.Fatalf("bob's page rings with %+v", in)
	}
	nextWeb(t, w.as, api.WebCallRinging)
	if _, err := w.bob.api.WebAnswer(ctx, in.ID, answer); err != nil {
		t.Fatal(err)
	}
	got := nextWeb(t, w.as, api.WebCallAnswered)
	if got.RemoteSDP != answer {
		t.Fatalf("alice's page got the answer %q, bob's page sent %q", got.RemoteSDP, answer)
	}
	if _, err := w.alice.api.WebConnected(ctx, c.ID, api.WebConnectedRequest{RemoteFingerprint: fb, LocalFingerprint: strings.ToLower(fa)}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.bob.api.WebConnected(ctx, c.ID, api.WebConnectedRequest{RemoteFingerprint: fa, LocalFingerprint: fb}); err != nil {
		t.Fatal(err)
	}
	nextWeb(t, w.as, api.WebCallActive)
	nextWeb(t, w.bs, api.WebCallActive)
	if err := w.alice.api.WebHangup(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	if e := nextWeb(t, w.bs, api.WebCallEnded); e.Reason != "" {
		t.Errorf("bob's call ended with %q", e.Reason)
	}
	if e := nextWeb(t, w.as, api.WebCallEnded); e.Reason != "" {
		t.Errorf("alice's call ended with %q", e.Reason)
	}
}

// Attack: the DTLS certificate alice's page connected to is not the one
// bob's answer named end to end (a man in the middle between the pages,
// or a page that was handed another SDP). The agent ends the call and
// tells bob. With the check off the call would go on.
func TestWebCallAttackFingerprintMismatch(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("check off %v", off), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			w := startWebPair(t, ctx)
			w.alice.a.web.noCheck.Store(off)
			fa, fb := testFP(), testFP()
			c, err := w.alice.api.WebDial(ctx, api.WebDialRequest{User: "bob", SDP: testSDP(fa)})
			if err != nil {
				t.Fatal(err)
			}
			in := nextWeb(t, w.bs, api.WebCallIncoming)
			if _, err := w.bob.api.WebAnswer(ctx, in.ID, testSDP(fb)); err != nil {
				t.Fatal(err)
			}
			nextWeb(t, w.as, api.WebCallAnswered)
			mitm := testFP()
			_, err = w.alice.api.WebConnected(ctx, c.ID, api.WebConnectedRequest{RemoteFingerprint: mitm, LocalFingerprint: fa})
			if off {
				// The defence is off: the attack works.
				if err != nil {
					t.Fatalf("with the check off: %v", err)
				}
				nextWeb(t, w.as, api.WebCallActive)
				return
			}
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Kind != api.KindForbidden {
				t.Fatalf("a connection to another certificate was accepted: %v", err)
			}
			if e := nextWeb(t, w.as, api.WebCallEnded); e.Reason != "fingerprint_mismatch" {
				t.Errorf("alice's call ended with %q", e.Reason)
			}
			if e := nextWeb(t, w.bs, api.WebCallEnded); e.Reason != "peer_failed" {
				t.Errorf("bob's call ended with %q", e.Reason)
			}
			// Its own certificate not the one its offer named: refused too.
			c, err = w.alice.api.WebDial(ctx, api.WebDialRequest{User: "bob", SDP: testSDP(fa)})
			if err != nil {
				t.Fatal(err)
			}
			in = nextWeb(t, w.bs, api.WebCallIncoming)
			if _, err := w.bob.api.WebAnswer(ctx, in.ID, testSDP(fb)); err != nil {
				t.Fatal(err)
			}
			nextWeb(t, w.as, api.WebCallAnswered)
			if _, err := w.alice.api.WebConnected(ctx, c.ID, api.WebConnectedRequest{RemoteFingerprint: fb, LocalFingerprint: testFP()}); err == nil {
				t.Fatal("a page whose own certificate is not the signalled one was let through")
			}
		})
	}
}

// Attack: SDP with no DTLS fingerprint, from the page (nothing for the
// peer to check the page's certificate against) or from a hostile peer
// (nothing to check the peer's against). Refused both ways; with the
// check off both would go through.
func TestWebCallAttackNoFingerprint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("check off %v", off), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			w := startWebPair(t, ctx)
			w.alice.a.web.noCheck.Store(off)
			w.bob.a.web.noCheck.Store(off)
			_, err := w.alice.api.WebDial(ctx, api.WebDialRequest{User: "bob", SDP: testSDP("")})
			if off != (err == nil) {
				t.Fatalf("an offer without a fingerprint from the page: %v", err)
			}
			if off {
				in := nextWeb(t, w.bs, api.WebCallIncoming)
				if err := w.bob.api.WebHangup(ctx, in.ID, false); err != nil {
					t.Fatal(err)
				}
				nextWeb(t, w.as, api.WebCallEnded)
			}
			// Bob's device, hostile, offers with no fingerprint, then with
			// one: alice's page rings only for the second.
			bad, good := make([]byte, 16), make([]byte, 16)
			rand.Read(bad)
			rand.Read(good)
			bc := w.bob.a.Client()
			for _, s := range []*content.CallSignal{
				{CallId: bad, Kind: content.CallSignal_OFFER, Sdp: testSDP("")},
				{CallId: good, Kind: content.CallSignal_OFFER, Sdp: testSDP(testFP())},
			} {
				if err := bc.SendCallSignal(ctx, "alice", s); err != nil {
					t.Fatal(err)
				}
			}
			in := nextWeb(t, w.as, api.WebCallIncoming)
			if got := string(in.ID); (got == string(bad)) != off {
				t.Fatalf("alice's page rang for the offer without a fingerprint: %v (check off %v)", got == string(bad), off)
			}
		})
	}
}

// The fingerprint parser takes one sha-256 certificate, repeated or not,
// and refuses the rest.
func TestSDPFingerprint(t *testing.T) {
	fp := testFP()
	for _, tc := range []struct {
		sdp  string
		want error
	}{
		{testSDP(fp), nil},
		{testSDP(strings.ToLower(fp)), nil},
		{"a=fingerprint:sha-256 " + fp + "\nm=audio 9\na=fingerprint:sha-256 " + fp + "\n", nil},
		{testSDP(""), errNoFingerprint},
		{"a=fingerprint:sha-256 " + fp + "\na=fingerprint:sha-256 " + testFP() + "\n", errTwoFingerprints},
		{"a=fingerprint:sha-1 AB:CD\na=fingerprint:sha-256 " + fp + "\n", errTwoFingerprints},
		{"a=fingerprint:sha-256 " + fp[:len(fp)-3] + "\n", errBadFingerprint},
		{"a=fingerprint:sha-256 " + strings.ReplaceAll(fp, ":", "-") + "\n", errBadFingerprint},
		{testSDP(fp) + strings.Repeat("a=x\r\n", maxSDP/5), errSDPTooLong},
	} {
		got, err := sdpFingerprint(tc.sdp)
		if !errors.Is(err, tc.want) {
			t.Errorf("%.60q: error %v, want %v", tc.sdp, err, tc.want)
		}
		if err == nil && got != fp {
			t.Errorf("%.60q: %q, want %q", tc.sdp, got, fp)
		}
	}
}

// FuzzSDPFingerprint: any text is either refused or yields a well-formed
// fingerprint that the SDP names.
func FuzzSDPFingerprint(f *testing.F) {
	f.Add(testSDP(testFP()))
	f.Add(testSDP(""))
	f.Add("a=fingerprint:sha-256 " + testFP() + "\na=fingerprint:SHA-256 " + testFP())
	f.Add("a=fingerprint:sha-256\na=fingerprint: \n")
	f.Fuzz(func(t *testing.T, sdp string) {
		fp, err := sdpFingerprint(sdp)
		if err != nil {
			return
		}
		if !wellFormedFingerprint(fp) || !strings.Contains(strings.ToUpper(sdp), fp) {
			t.Fatalf("%q from %q", fp, sdp)
		}
	})
}
