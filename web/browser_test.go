package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"sotto/internal/browser"
)

// launchBrowser starts headless Chromium for the test. Without Chromium the
// test is skipped locally and fails under CI (CI=true), where .ci/run
// installs it.
func launchBrowser(t *testing.T, extra ...string) *browser.Browser {
	t.Helper()
	path, err := browser.Find()
	if errors.Is(err, browser.ErrNotFound) {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := browser.Launch(ctx, path, t.TempDir(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// attackerSite serves one page of HTML on another port of 127.0.0.1: the
// same site as the app (cookies do not care about ports), another origin.
func attackerSite(t *testing.T, html string) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, html)
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

// browserLogin opens the login URL in a fresh page and waits for the app.
func browserLogin(t *testing.T, ctx context.Context, b *browser.Browser, s *Server) *browser.Page {
	t.Helper()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, s.LoginURL()); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `location.pathname === "/" && document.querySelector("#app")`); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBrowserLoginOnce(t *testing.T) {
	b := launchBrowser(t)
	ctx := testCtx(t)
	s, _ := startServer(t, 0)
	u := s.LoginURL()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Navigate(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `location.href === `+fmt.Sprintf("%q", s.Origin()+"/")); err != nil {
		t.Fatal(err)
	}
	var cookie string
	if err := p.Eval(ctx, "document.cookie", &cookie); err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		t.Errorf("the session cookie is readable by script: %q", cookie)
	}
	// The same URL in another profile (another local user who read it
	// from the screen or the shell history) gets nothing.
	q, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Navigate(ctx, u); err != nil {
		t.Fatal(err)
	}
	text, _ := q.Text(ctx, "body")
	if !strings.Contains(text, "used or has expired") {
		t.Errorf("second use of the login URL shows %q", text)
	}
	if err := q.Navigate(ctx, s.Origin()+"/"); err != nil {
		t.Fatal(err)
	}
	if text, _ := q.Text(ctx, "body"); !strings.Contains(text, "not logged in") {
		t.Errorf("the app without a session shows %q", text)
	}
}

// A page on another port of 127.0.0.1 posts to the API from script and
// from a form. The session cookie goes along (same site), so only the
// Origin and fetch-metadata checks stand between it and the API.
func TestBrowserAttackCSRF(t *testing.T) {
	b := launchBrowser(t)
	for _, c := range []struct {
		name string
		off  defence
		want int // calls the API sees
	}{{"defended", 0, 0}, {"defence off", defOrigin | defFetchSite, 2}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			s, probe := startServer(t, c.off)
			p := browserLogin(t, ctx, b, s)
			evil := attackerSite(t, `<!doctype html><body>
<form id=f method=POST action="`+s.Origin()+`/api/v1/send" target=sink><input name=text value=forged></form>
<iframe name=sink></iframe>
<script>
fetch("`+s.Origin()+`/api/v1/send", {method: "POST", mode: "no-cors", credentials: "include", body: "{}"})
  .finally(() => { document.getElementById("f").submit(); setTimeout(() => window.done = true, 500) });
</script>`)
			if err := p.Navigate(ctx, evil); err != nil {
				t.Fatal(err)
			}
			if err := p.WaitFor(ctx, "window.done"); err != nil {
				t.Fatal(err)
			}
			probe.mu.Lock()
			got := 0
			for _, c := range probe.calls {
				if c == "POST /v1/send" { // the app's own calls are not counted
					got++
				}
			}
			probe.mu.Unlock()
			if got != c.want {
				t.Errorf("the API saw %d forged calls, want %d", got, c.want)
			}
		})
	}
}

// A page on another port frames the app to trick clicks out of the person.
func TestBrowserAttackFraming(t *testing.T) {
	b := launchBrowser(t)
	for _, c := range []struct {
		name   string
		off    defence
		framed bool
	}{{"defended", 0, false}, {"defence off", defFrame | defCSP, true}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			s, _ := startServer(t, c.off)
			p := browserLogin(t, ctx, b, s)
			evil := attackerSite(t, `<!doctype html><body><iframe id=f src="`+s.Origin()+`/"></iframe>`)
			if err := p.Navigate(ctx, evil); err != nil {
				t.Fatal(err)
			}
			// Chromium replaces a frame it refuses by an error page of its
			// own origin; an app that loaded has the app's origin.
			var frames struct {
				FrameTree struct {
					ChildFrames []struct {
						Frame struct {
							URL            string `json:"url"`
							UnreachableURL string `json:"unreachableUrl"`
						} `json:"frame"`
					} `json:"childFrames"`
				} `json:"frameTree"`
			}
			if err := p.Call(ctx, "Page.getFrameTree", nil, &frames); err != nil {
				t.Fatal(err)
			}
			if len(frames.FrameTree.ChildFrames) != 1 {
				t.Fatalf("frames: %+v", frames)
			}
			f := frames.FrameTree.ChildFrames[0].Frame
			framed := strings.HasPrefix(f.URL, s.Origin())
			if framed != c.framed {
				t.Errorf("framed = %v (frame %+v), want %v", framed, f, c.framed)
			}
		})
	}
}

// Script injected into the page (were the app ever to insert untrusted
// text as HTML) does not run: no inline script, no eval, no string
// assigned as HTML.
func TestBrowserAttackInjectedScript(t *testing.T) {
	b := launchBrowser(t)
	attacks := map[string]string{
		"inline script": `(() => { const s = document.createElement("script"); s.textContent = "window.pwned = 1"; document.body.append(s); })()`,
		"innerHTML":     `(() => { const d = document.createElement("div"); d.innerHTML = "<img src=x onerror='window.pwned=1'>"; document.body.append(d); })()`,
		"string timer":  `setTimeout("window.pwned = 1", 0)`,
		"handler":       `document.body.setAttribute("onclick", "window.pwned = 1"), document.body.click()`,
		"foreign":       `(() => { const s = document.createElement("script"); s.src = "http://127.0.0.1:1/x.js"; document.body.append(s); })()`,
	}
	for _, c := range []struct {
		name string
		off  defence
	}{{"defended", 0}, {"defence off", defCSP}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			s, _ := startServer(t, c.off)
			p := browserLogin(t, ctx, b, s)
			ran := 0
			for name, js := range attacks {
				_ = p.Eval(ctx, "delete window.pwned", nil)
				_ = p.Eval(ctx, js, nil) // defended, it throws or is refused
				time.Sleep(100 * time.Millisecond)
				var pwned bool
				if err := p.Eval(ctx, "window.pwned === 1", &pwned); err != nil {
					t.Fatal(err)
				}
				if pwned {
					ran++
				}
				if pwned && c.off == 0 {
					t.Errorf("%s: injected script ran", name)
				}
			}
			if c.off != 0 && ran < 3 {
				t.Errorf("without the policy only %d of the injections ran: the test proves nothing", ran)
			}
		})
	}
}

// DNS rebinding: Chromium resolves evil.test to 127.0.0.1; a page under
// that name, which the attacker controls, reaches the app's port.
func TestBrowserAttackDNSRebinding(t *testing.T) {
	b := launchBrowser(t, "--host-resolver-rules=MAP evil.test 127.0.0.1")
	for _, c := range []struct {
		name string
		off  defence
		want string
	}{{"defended", 0, "unknown host"}, {"defence off", defHost | defSession, `{"ok":true}`}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			s, _ := startServer(t, c.off)
			p, err := b.NewPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			port := s.hosts[0][strings.LastIndex(s.hosts[0], ":")+1:]
			if err := p.Navigate(ctx, "http://evil.test:"+port+"/"); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := p.Eval(ctx, `fetch("/api/v1/state").then(r => r.text())`, &got); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, c.want) {
				t.Errorf("the rebound page read %q, want %q", got, c.want)
			}
		})
	}
}
