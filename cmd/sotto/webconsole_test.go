package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startWeb starts the agent of user (sotto up) and sotto web beside it, and
// returns the login URL it prints.
func (w *webWorld) startWeb(t *testing.T, user string) string {
	t.Helper()
	w.run(t, "--home", w.home(user), "--receipt-delay", "100ms", "up")
	t.Cleanup(func() { exec.Command(w.sotto, "--home", w.home(user), "down").Run() })
	cmd := exec.Command(w.sotto, "--home", w.home(user), "web")
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "Sotto is at "); ok {
			go io.Copy(io.Discard, stdout)
			return u
		}
	}
	cmd.Wait()
	t.Fatalf("sotto web for %s printed no URL: %s", user, stderr.String())
	return ""
}

// TestWebAppConsole: carol, the organization's admin, runs her agent and
// the web app, and uses the console: members with their devices and
// certificates, an invitation with its QR code, a notice (alice's app
// shows it), the policy (shown, then set: alice's agent applies it), and a
// remote wipe of bob's device, confirmed by the device. Alice's device,
// not the admin's, is refused every console call, and shows no console.
func TestWebAppConsole(t *testing.T) {
	w := newWebWorld(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Alice: no console, and her agent refuses its calls.
	pa, err := w.b.NewPage(ctx)
	must(t, err)
	must(t, pa.Navigate(ctx, w.url))
	wait(t, pa, `document.querySelector(".who")?.textContent.startsWith("alice")`)
	wait(t, pa, `document.querySelector("#link-btn")`)
	var consoleShown bool
	must(t, pa.Eval(ctx, `new Promise(r => setTimeout(() => r(!document.querySelector("#console-btn").hidden), 500))`, &consoleShown))
	if consoleShown {
		t.Error("alice's app (not the admin's device) shows the console")
	}
	var refused string
	must(t, pa.Eval(ctx, `fetch("/api/v1/admin/notices", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({text: "forged"})}).then(async r => r.status + " " + (await r.json()).error.kind)`, &refused))
	if refused != "403 forbidden" {
		t.Errorf("a notice from alice's device through the console API: %s, want 403 forbidden", refused)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/admin/invitations", `{"user":"mallory"}`},
		{"GET", "/v1/admin/members", ""},
		{"PUT", "/v1/admin/policy", `{"calls_disabled":true}`},
		{"POST", "/v1/admin/wipe", `{"user":"bob","device":1}`},
		{"GET", "/v1/admin/deliveries", ""},
	} {
		if code := w.agentCall(t, "alice", c.method, c.path, "application/json", strings.NewReader(c.body), nil); code != 403 {
			t.Errorf("%s %s on alice's agent: %d, want 403", c.method, c.path, code)
		}
	}

	// Carol's console.
	url := w.startWeb(t, "carol")
	p, err := w.b.NewPage(ctx)
	must(t, err)
	must(t, p.SetSize(ctx, 1200, 900, false))
	must(t, p.Navigate(ctx, url))
	wait(t, p, `document.querySelector(".who")?.textContent.startsWith("carol")`)
	wait(t, p, `!document.querySelector("#console-btn").hidden`)
	must(t, p.Click(ctx, "#console-btn"))
	wait(t, p, `document.querySelector('dialog.console[open] tr[data-user="bob"] li[data-device="1"]')`)
	wait(t, p, `document.querySelector('dialog.console tr[data-user="alice"]')`)
	wait(t, p, `document.querySelector("#policy-save")`)

	// An invitation, as text and QR code.
	must(t, p.Focus(ctx, "#invite-user"))
	must(t, p.Type(ctx, "dave"))
	must(t, p.Click(ctx, "#invite-btn"))
	wait(t, p, `(() => { const i = document.querySelector("dialog.console img.invite-qr"); return i && i.complete && i.naturalWidth > 100 })()`)
	var inv string
	must(t, p.Eval(ctx, `document.querySelector(".invite-text").value`, &inv))
	if !strings.HasPrefix(inv, "sotto-invite") && len(inv) < 40 {
		t.Errorf("invitation text: %q", inv)
	}
	audit(t, p, "console")
	screenshot(t, p, "console")

	// A notice reaches alice's app.
	must(t, p.Focus(ctx, "#notice-text"))
	must(t, p.Type(ctx, "Press conference at 3 pm."))
	must(t, p.Click(ctx, "#notice-btn"))
	wait(t, p, hasText(".console-status", "Notice signed and queued"))
	wait(t, pa, hasText(".toast", "Press conference at 3 pm."))

	// The policy: an idle lock of an hour, from the form; alice's agent
	// applies it.
	must(t, p.Eval(ctx, `document.querySelector("#policy-idle-lock-seconds").select()`, nil))
	must(t, p.Type(ctx, "3600"))
	must(t, p.Click(ctx, "#policy-save"))
	wait(t, p, hasText(".console-status", "Policy signed and queued"))
	wait(t, p, hasText(".console-policy .hint", "Version 1 is in force"))
	deadline := time.Now().Add(time.Minute)
	for {
		var st struct {
			IdleLockSeconds int `json:"idle_lock_seconds"`
		}
		w.agentJSON(t, "alice", "GET", "/v1/status", nil, &st)
		if st.IdleLockSeconds == 3600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's agent never applied the policy: %+v", st)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Remote wipe of bob's device, after a confirmation; the console
	// shows it waiting, then confirmed by the device.
	must(t, p.Click(ctx, `dialog.console tr[data-user="bob"] li[data-device="1"] .wipe-btn`))
	wait(t, p, `document.querySelector("dialog.confirm[open]")`)
	must(t, p.Click(ctx, "dialog.confirm .confirm-yes"))
	wait(t, p, hasText(".console-status", "Wipe order for bob's device 1 signed and queued"))
	wait(t, p, `document.querySelector('.delivery[data-kind="wipe"]')`)
	deadline = time.Now().Add(time.Minute)
	for {
		must(t, p.Click(ctx, "#deliveries-refresh"))
		var ok bool
		must(t, p.Eval(ctx, `new Promise(r => setTimeout(() => r(!!document.querySelector('.delivery.done[data-kind="wipe"]')), 300))`, &ok))
		if ok {
			break
		}
		if time.Now().After(deadline) {
			var shown string
			p.Eval(ctx, `document.querySelector(".console-deliveries").innerText`, &shown)
			t.Fatalf("the wipe was never confirmed: %s", shown)
		}
	}
	wait(t, p, hasText(`.delivery[data-kind="wipe"] .delivery-state`, "confirmed"))
	screenshot(t, p, "console-wipe")
	// The CLI's admin commands go through carol's running agent too
	// (before, they were refused beside it).
	if out := w.run(t, "--home", w.home("carol"), "admin", "delivery"); !strings.Contains(out, "wipe of bob device 1: applied by 1 of 1") {
		t.Errorf("sotto admin delivery beside the agent: %s", out)
	}
	if out := w.run(t, "--home", w.home("carol"), "admin", "notice", "From the command line."); !strings.Contains(out, "notice signed and queued") {
		t.Errorf("sotto admin notice beside the agent: %s", out)
	}
	wait(t, pa, hasText(".toast", "From the command line."))
	must(t, p.SetSize(ctx, 390, 844, true))
	wait(t, p, `document.documentElement.scrollWidth <= window.innerWidth`)
	screenshot(t, p, "phone-console")
	for _, e := range append(p.Errors(), pa.Errors()...) {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Trusted Type") || strings.HasPrefix(e, "exception") {
			t.Errorf("page error: %s", e)
		}
	}
}
