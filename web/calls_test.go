package web

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/agent"
	"sotto/agent/api"
	"sotto/client"
	"sotto/client/call"
	"sotto/internal/browser"
	"sotto/internal/relaytest"
)

// Calls in the browser, end to end: a real relay with its TURN server,
// real agents serving the web app, headless Chromium with speech from
// espeak-ng as its microphone, and a CLI device (an agent whose pion call
// manager plays and records WAV files, as sotto call does).

const callPass = "correct horse battery staple"

// callRelay is a real relay (SQLite, WebSockets on 127.0.0.1) with its
// TURN server, and its organization (internal/relaytest).
type callRelay struct{ *relaytest.Relay }

func startCallRelay(t *testing.T) *callRelay {
	t.Helper()
	return &callRelay{relaytest.Start(t, relaytest.Options{TURN: true})}
}

// enroll enrolls user in a new home folder and returns the folder.
func (r *callRelay) enroll(t *testing.T, user string) string {
	t.Helper()
	return r.Enroll(t, user, []byte(callPass))
}

// callAgent is a device's agent carrying calls, serving the web app too.
type callAgent struct {
	user string
	a    *agent.Agent
	api  *api.Client
	web  *Server
}

// startCallAgent runs user's agent with the call options opts (the
// device's calls: relay-only or not) and the web app mounted.
func (r *callRelay) startCallAgent(t *testing.T, user string, opts call.Options) *callAgent {
	t.Helper()
	home := r.enroll(t, user)
	ln, err := agent.Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Listen(Config{})
	if err != nil {
		t.Fatal(err)
	}
	opts.PCMUOnly = true // as the default build (no Opus): the same either way here
	cfg := agent.Config{Home: home, Listeners: []net.Listener{ln}, Calls: &opts,
		Mounts:  []agent.Mount{{Listener: srv.Listener(), Wrap: srv.Wrap}},
		Options: client.Options{ReceiptDelayMin: time.Millisecond, ReceiptDelayMax: 5 * time.Millisecond}}
	a, err := agent.Open(context.Background(), []byte(callPass), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	cl := api.Dial(home)
	t.Cleanup(func() {
		cl.CloseIdle()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &callAgent{user: user, a: a, api: cl, web: srv}
}

// introduce has a and b exchange a message, so that each knows the other
// (a call signal travels in a session).
func introduce(t *testing.T, ctx context.Context, a, b *callAgent) {
	t.Helper()
	st, err := b.api.Events(ctx, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := a.api.Send(ctx, b.user, "hello "+b.user, nil); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, st, api.EventMessage)
	if _, err := b.api.Send(ctx, a.user, "hello "+a.user, nil); err != nil {
		t.Fatal(err)
	}
}

func waitEvent(t *testing.T, st *api.Stream, typ string) *api.Event {
	t.Helper()
	for {
		ev, err := st.Next()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if ev.Type == typ {
			return ev
		}
	}
}

// callBrowser launches Chromium whose fake microphone plays wav (looped).
func callBrowser(t *testing.T, wav string) *browser.Browser {
	return launchBrowser(t, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
		"--use-file-for-fake-audio-capture="+wav, "--autoplay-policy=no-user-gesture-required",
		"--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns")
}

// callPage logs into a's web app and waits for its call stream.
func callPage(t *testing.T, ctx context.Context, b *browser.Browser, a *callAgent) *browser.Page {
	t.Helper()
	p := browserLogin(t, ctx, b, a.web)
	if err := p.WaitFor(ctx, `document.querySelector("#call-bar")?.hasAttribute("data-ready")`); err != nil {
		t.Fatal(err)
	}
	return p
}

// dialFromPage opens the chat with peer and presses Call.
func dialFromPage(t *testing.T, ctx context.Context, p *browser.Page, peer string) {
	t.Helper()
	if err := p.Click(ctx, fmt.Sprintf(`.conv[data-peer=%q]`, peer)); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, fmt.Sprintf(`document.querySelector("#chat-title")?.textContent === %q`, peer)); err != nil {
		t.Fatal(err)
	}
	if err := p.Click(ctx, "#call-btn"); err != nil {
		t.Fatal(err)
	}
}

func waitCallState(t *testing.T, ctx context.Context, p *browser.Page, state string) {
	t.Helper()
	if err := p.WaitFor(ctx, fmt.Sprintf(`document.querySelector("#call-bar")?.getAttribute("data-state") === %q`, state)); err != nil {
		text, _ := p.Text(ctx, "#call-status")
		t.Fatalf("call never %s (bar: %q): %v", state, text, err)
	}
}

// startRecording records the remote audio of p's call (what its <audio>
// element plays) at 48 kHz, from now on, with WebAudio. The recorder is
// the test's, injected: the app has none.
func startRecording(t *testing.T, ctx context.Context, p *browser.Page) {
	t.Helper()
	const js = `(async () => {
		const el = document.querySelector("#call-audio");
		const ac = new AudioContext({ sampleRate: 48000 });
		await ac.resume();
		const src = ac.createMediaStreamSource(el.srcObject);
		const proc = ac.createScriptProcessor(4096, 1, 1);
		const rec = { chunks: [], n: 0 };
		proc.onaudioprocess = (e) => { const d = e.inputBuffer.getChannelData(0); rec.chunks.push(new Float32Array(d)); rec.n += d.length; };
		src.connect(proc);
		proc.connect(ac.destination);
		window.__rec = rec;
		window.__recNodes = [ac, src, proc];
		return ac.sampleRate;
	})()`
	var rate float64
	if err := p.Eval(ctx, js, &rate); err != nil {
		t.Fatal(err)
	}
	if rate != 48000 {
		t.Fatalf("recording at %v Hz", rate)
	}
}

// recorded waits for seconds of recording and returns it at 8 kHz.
func recorded(t *testing.T, ctx context.Context, p *browser.Page, seconds int) []float64 {
	t.Helper()
	if err := p.WaitFor(ctx, fmt.Sprintf("window.__rec && window.__rec.n >= %d", 48000*seconds)); err != nil {
		t.Fatal(err)
	}
	const js = `(() => {
		const r = window.__rec;
		const out = new Int16Array(r.n);
		let i = 0;
		for (const c of r.chunks) for (const v of c) out[i++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
		const b = new Uint8Array(out.buffer);
		let s = "";
		for (let j = 0; j < b.length; j += 8192) s += String.fromCharCode.apply(null, b.subarray(j, j + 8192));
		return btoa(s);
	})()`
	var b64 string
	if err := p.Eval(ctx, js, &b64); err != nil {
		t.Fatal(err)
	}
	return floats(call.Decimate6(pcmFromBase64(t, b64)))
}

// waitFile waits for path to exist (the CLI device saves its recording
// when the call ends).
func waitFile(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never written", path)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// callSpeech makes the phrases the tests send (and one never sent, the
// control).
func callSpeech(t *testing.T) (a, b, control *speech) {
	dir := t.TempDir()
	a = makeSpeech(t, dir, "a", "The quick brown fox jumps over the lazy dog by the river.", 6)
	b = makeSpeech(t, dir, "b", "Seven silver swans swam silently south at sunset.", 6)
	control = makeSpeech(t, dir, "c", "Please call me back tomorrow morning about the budget.", 1)
	return a, b, control
}

// A call between two web apps: alice's page calls bob, bob's page rings
// and answers, and what alice's microphone says arrives in bob's page.
func TestBrowserCallWebToWeb(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay, two agents and a browser")
	}
	sa, _, control := callSpeech(t)
	b := callBrowser(t, sa.wav)
	ctx := testCtx(t)
	r := startCallRelay(t)
	alice := r.startCallAgent(t, "alice", call.Options{})
	bob := r.startCallAgent(t, "bob", call.Options{})
	introduce(t, ctx, alice, bob)
	pa := callPage(t, ctx, b, alice)
	pb := callPage(t, ctx, b, bob)

	dialFromPage(t, ctx, pa, "bob")
	waitCallState(t, ctx, pb, "incoming")
	if text, _ := pb.Text(ctx, "#call-status"); !strings.Contains(text, "alice") {
		t.Errorf("bob's page rings with %q", text)
	}
	if err := pb.Click(ctx, "#call-answer"); err != nil {
		t.Fatal(err)
	}
	waitCallState(t, ctx, pa, "active")
	waitCallState(t, ctx, pb, "active")
	startRecording(t, ctx, pb)
	got := recorded(t, ctx, pb, 5)
	checkSpeech(t, "alice's page → bob's page", got, sa, control)

	if err := pa.Click(ctx, "#call-hangup"); err != nil {
		t.Fatal(err)
	}
	waitCallState(t, ctx, pb, "ended")
}

// webCLICall runs one call between a web app (page p of web) and a CLI
// device (cli); fromWeb: the page dials. Both sides speak; each side's
// recording is compared with what the other sent.
func webCLICall(t *testing.T, ctx context.Context, p *browser.Page, web, cli *callAgent, fromWeb bool, webSays, cliSays, control *speech) {
	t.Helper()
	st, err := cli.api.Events(ctx, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := filepath.Join(t.TempDir(), "cli-heard.wav")
	var id api.ID
	if fromWeb {
		dialFromPage(t, ctx, p, cli.user)
		c := waitEvent(t, st, api.EventCallIncoming).Call
		id = c.ID
		if _, err := cli.api.Answer(ctx, id, api.AnswerRequest{AudioIn: cliSays.wavN, AudioOut: out}); err != nil {
			t.Fatal(err)
		}
	} else {
		c, err := cli.api.Dial(ctx, api.DialRequest{User: web.user, AudioIn: cliSays.wavN, AudioOut: out})
		if err != nil {
			t.Fatal(err)
		}
		id = c.ID
		waitCallState(t, ctx, p, "incoming")
		if err := p.Click(ctx, "#call-answer"); err != nil {
			t.Fatal(err)
		}
	}
	waitCallState(t, ctx, p, "active")
	waitEvent(t, st, api.EventCallConnected)
	startRecording(t, ctx, p)
	got := recorded(t, ctx, p, 5)
	// The CLI device heard the page since the call connected: at least as
	// long as the page recorded.
	if fromWeb {
		if err := p.Click(ctx, "#call-hangup"); err != nil {
			t.Fatal(err)
		}
	} else if err := cli.api.Hangup(ctx, id); err != nil {
		t.Fatal(err)
	}
	waitCallState(t, ctx, p, "ended")
	ended := waitEvent(t, st, api.EventCallEnded).Call
	if ended.Error != nil {
		t.Errorf("the CLI device's call ended with %v", ended.Error)
	}
	waitFile(t, ctx, out)
	heard, rate, err := call.ReadWAVFileRate(out)
	if err != nil {
		t.Fatal(err)
	}
	if rate != 8000 {
		t.Fatalf("the CLI device recorded at %d Hz", rate)
	}
	dir := "web → CLI"
	if !fromWeb {
		dir = "CLI → web"
	}
	checkSpeech(t, dir+" call, the page's speech at the CLI device", floats(heard), webSays, control)
	checkSpeech(t, dir+" call, the CLI device's speech in the page", got, cliSays, control)
}

// Calls between a web app and a CLI device (pion), dialled from either
// side: each side's speech arrives at the other.
func TestBrowserCallWebCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay, two agents and a browser")
	}
	sa, sb, control := callSpeech(t)
	b := callBrowser(t, sa.wav)
	ctx := testCtx(t)
	r := startCallRelay(t)
	alice := r.startCallAgent(t, "alice", call.Options{})
	carol := r.startCallAgent(t, "carol", call.Options{})
	introduce(t, ctx, alice, carol)
	p := callPage(t, ctx, b, alice)
	t.Run("web dials", func(t *testing.T) { webCLICall(t, ctx, p, alice, carol, true, sa, sb, control) })
	t.Run("CLI dials", func(t *testing.T) { webCLICall(t, ctx, p, alice, carol, false, sa, sb, control) })
}

// The same through the relay's TURN server only: both devices are
// relay-only (the page's iceTransportPolicy is "relay", from its agent),
// so the media has no other path.
func TestBrowserCallRelayOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay, two agents and a browser")
	}
	sa, sb, control := callSpeech(t)
	b := callBrowser(t, sa.wav)
	ctx := testCtx(t)
	r := startCallRelay(t)
	alice := r.startCallAgent(t, "alice", call.Options{RelayOnly: true})
	carol := r.startCallAgent(t, "carol", call.Options{RelayOnly: true})
	introduce(t, ctx, alice, carol)
	ice, err := alice.api.WebICE(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !ice.RelayOnly || len(ice.ICEServers) == 0 {
		t.Fatalf("the page's ICE configuration: %+v", ice)
	}
	p := callPage(t, ctx, b, alice)
	before := r.TURNAllocations.Load()
	webCLICall(t, ctx, p, alice, carol, true, sa, sb, control)
	if n := r.TURNAllocations.Load() - before; n < 2 {
		t.Errorf("%d TURN allocations for a relay-only call of two devices", n)
	}
}
