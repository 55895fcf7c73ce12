package web

import (
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
