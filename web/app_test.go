package web

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// The app loads under its own policy with no error: every script, style
// and image it uses comes from the server and nothing is refused.
func TestBrowserAppLoadsClean(t *testing.T) {
	b := launchBrowser(t)
	ctx := testCtx(t)
	s, _ := startServer(t, 0)
	p := browserLogin(t, ctx, b, s)
	if err := p.WaitFor(ctx, `document.querySelector("#sidebar") && document.querySelector("#search")`); err != nil {
		t.Fatal(err)
	}
	problems, err := p.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("accessibility: %s", pr)
	}
	for _, e := range p.Errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Trusted Type") || strings.HasPrefix(e, "exception") {
			t.Errorf("page error: %s", e)
		}
	}
}

// With the agent gone, the app says so instead of showing an empty shell.
func TestBrowserAgentDown(t *testing.T) {
	b := launchBrowser(t)
	ctx := testCtx(t)
	s, err := Listen(Config{API: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"kind":"unavailable","message":"the agent is not running: start it with sotto up"}}`)
	})})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(sctx) }()
	defer func() { cancel(); <-done }()
	p := browserLogin(t, ctx, b, s)
	if err := p.WaitFor(ctx, `document.querySelector(".gone")?.textContent.includes("the agent is not running")`); err != nil {
		t.Fatal(err)
	}
}
