package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"rsc.io/qr"
)

// writeY4M writes data as a QR code in a one-frame .y4m video (640×480,
// 4:2:0), for Chromium's fake camera (--use-file-for-fake-video-capture):
// the picture a person holds up to the camera.
func writeY4M(t *testing.T, path string, data []byte) {
	t.Helper()
	code, err := qr.Encode(string(data), qr.M)
	must(t, err)
	const w, h, scale = 640, 480, 6
	y := bytes.Repeat([]byte{200}, w*h) // a light grey wall around it
	side := (code.Size + 8) * scale
	x0, y0 := (w-side)/2, (h-side)/2
	for py := range side {
		for px := range side {
			mx, my := px/scale-4, py/scale-4
			v := byte(235)
			if mx >= 0 && my >= 0 && mx < code.Size && my < code.Size && code.Black(mx, my) {
				v = 16
			}
			y[(y0+py)*w+x0+px] = v
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "YUV4MPEG2 W%d H%d F10:1 Ip A1:1 C420jpeg\nFRAME\n", w, h)
	b.Write(y)
	b.Write(bytes.Repeat([]byte{128}, w*h/2)) // U and V: no colour
	must(t, os.WriteFile(path, b.Bytes(), 0o600))
}

// TestWebAppGroups: alice, in the web app, creates a group with bob, writes
// in it and reads bob's messages (unread counts while away), sees each
// member's verification state, adds and removes a member; verifies bob by
// scanning his safety-number QR code with the (fake) camera after a wrong
// code is refused; and links a new device, whose name she sees before
// approving it.
func TestWebAppGroups(t *testing.T) {
	w := newWebWorld(t, false)
	camera := filepath.Join(w.dir, "camera.y4m")
	w.b = launchChromium(t, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
		"--use-file-for-fake-video-capture="+camera)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p, err := w.b.NewPage(ctx)
	must(t, err)
	must(t, p.SetSize(ctx, 1200, 800, false))
	must(t, p.Navigate(ctx, w.url))
	wait(t, p, `document.querySelector(".who")?.textContent.startsWith("alice")`)
	wait(t, p, hasText("#group-list", "No groups yet."))

	// A new group with bob, from the New group dialog.
	must(t, p.Click(ctx, "#new-group"))
	wait(t, p, `document.querySelector("dialog.group-create[open]")`)
	audit(t, p, "new group")
	must(t, p.Focus(ctx, "#group-name"))
	must(t, p.Type(ctx, "newsroom"))
	must(t, p.Focus(ctx, "#group-users"))
	must(t, p.Type(ctx, "bob"))
	must(t, p.Click(ctx, "#group-create-btn"))
	wait(t, p, `!document.querySelector("#group-chat").hidden && document.querySelector("#group-title").textContent === "newsroom"`)
	var gid string
	must(t, p.Eval(ctx, `document.querySelector(".conv.group").dataset.group`, &gid))

	// Bob's agent takes in the Welcome; alice writes, bob reads.
	var bobGroups struct {
		Groups []struct {
			ID      string
			Members []struct{ User string }
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		w.agentJSON(t, "bob", "GET", "/v1/groups", nil, &bobGroups)
		if len(bobGroups.Groups) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob never joined the group")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if bobGroups.Groups[0].ID != gid {
		t.Fatalf("bob's group %s, alice's %s", bobGroups.Groups[0].ID, gid)
	}
	must(t, p.Focus(ctx, "#group-composer-text"))
	must(t, p.Type(ctx, "stories for tomorrow?"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, hasText("#group-messages .msg.out .text", "stories for tomorrow?"))
	groupText := func(user, text string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			var r struct{ Messages []struct{ Text string } }
			w.agentJSON(t, user, "GET", "/v1/groups/"+gid+"/messages?limit=0", nil, &r)
			for _, m := range r.Messages {
				if m.Text == text {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never got %q in the group: %+v", user, text, r.Messages)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	groupText("bob", "stories for tomorrow?")
	w.agentJSON(t, "bob", "POST", "/v1/groups/"+gid+"/messages", map[string]string{"text": "the council vote"}, nil)
	wait(t, p, `[...document.querySelectorAll("#group-messages .msg.in")].some(e => e.querySelector(".group-from")?.textContent === "bob" && e.querySelector(".text")?.textContent === "the council vote")`)

	// Away from the group (in the chat with bob), its unread count grows.
	must(t, p.Focus(ctx, "#new-peer"))
	must(t, p.Type(ctx, "bob"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, `document.querySelector("#group-chat").hidden && document.querySelector("#chat-title").textContent === "bob"`)
	w.agentJSON(t, "bob", "POST", "/v1/groups/"+gid+"/messages", map[string]string{"text": "and the fire"}, nil)
	w.agentJSON(t, "bob", "POST", "/v1/groups/"+gid+"/messages", map[string]string{"text": "and the <b>match</b>"}, nil)
	wait(t, p, fmt.Sprintf(`document.querySelector('.conv.group[data-group="%s"] .badge')?.textContent === "2" && document.title === "(2) Sotto"`, gid))
	screenshot(t, p, "groups-unread")
	must(t, p.Click(ctx, fmt.Sprintf(`.conv.group[data-group="%s"]`, gid)))
	wait(t, p, hasText("#group-messages .text", "and the <b>match</b>"))
	wait(t, p, `!document.querySelector(".conv.group .badge") && document.title === "Sotto"`)
	var injected bool
	must(t, p.Eval(ctx, `!!document.querySelector("#group-messages b")`, &injected))
	if injected {
		t.Error("a group member's text was inserted as HTML")
	}
	must(t, p.Eval(ctx, `document.querySelector(".toast").hidden = true`, nil))
	audit(t, p, "group chat")
	screenshot(t, p, "desktop-group")

	// Members: bob is not verified yet.
	must(t, p.Click(ctx, "#group-members-btn"))
	wait(t, p, `document.querySelector('dialog.group-members[open] li[data-user="bob"] .member-state.unverified')`)
	wait(t, p, `document.querySelector('dialog.group-members li[data-user="alice"] .member-state.self')`)
	audit(t, p, "group members")
	must(t, p.Click(ctx, "dialog.group-members .members-close"))

	// Verification by scanning bob's QR code. A wrong code first (alice's
	// own, as if she scanned her own screen): a mismatch, not verified.
	var own, bobs struct{ Scannable []byte }
	w.agentJSON(t, "alice", "GET", "/v1/contacts/bob/safety-number", nil, &own)
	w.agentJSON(t, "bob", "GET", "/v1/contacts/alice/safety-number", nil, &bobs)
	writeY4M(t, camera, own.Scannable)
	must(t, p.Focus(ctx, "#new-peer"))
	must(t, p.Type(ctx, "bob"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, `document.querySelector("#chat-title").textContent === "bob" && !document.querySelector("#chat").hidden`)
	must(t, p.Click(ctx, "#safety-btn"))
	wait(t, p, `document.querySelector("dialog.safety[open] .sn-scan")`)
	must(t, p.Click(ctx, "dialog.safety .sn-scan"))
	wait(t, p, `document.querySelector("dialog.safety .scan-result.mismatch")`)
	var contacts struct {
		Contacts []struct {
			User     string
			Verified bool
		}
	}
	w.agentJSON(t, "alice", "GET", "/v1/contacts", nil, &contacts)
	for _, c := range contacts.Contacts {
		if c.User == "bob" && c.Verified {
			t.Fatal("a wrong QR code marked bob verified")
		}
	}
	// Then bob's own code: a match, and bob is verified.
	writeY4M(t, camera, bobs.Scannable)
	must(t, p.Click(ctx, "dialog.safety .sn-scan"))
	wait(t, p, `document.querySelector("dialog.safety .scan-result.match")`)
	audit(t, p, "scan")
	screenshot(t, p, "scan-verified")
	must(t, p.Click(ctx, "dialog.safety .sn-close"))
	w.agentJSON(t, "alice", "GET", "/v1/contacts", nil, &contacts)
	verified := false
	for _, c := range contacts.Contacts {
		verified = verified || (c.User == "bob" && c.Verified)
	}
	if !verified {
		t.Fatalf("bob not verified after a matching scan: %+v", contacts)
	}
	must(t, p.Click(ctx, fmt.Sprintf(`.conv.group[data-group="%s"]`, gid)))
	must(t, p.Click(ctx, "#group-members-btn"))
	wait(t, p, `document.querySelector('dialog.group-members[open] li[data-user="bob"] .member-state.verified')`)
	screenshot(t, p, "group-members")

	// Add carol (certified by the organization), then remove her.
	must(t, p.Focus(ctx, "#member-add"))
	must(t, p.Type(ctx, "carol"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, `!document.querySelector("dialog.group-members") && document.querySelector("#group-sub").textContent.startsWith("3 members")`)
	w.agentJSON(t, "bob", "GET", "/v1/groups", nil, &bobGroups)
	must(t, p.Click(ctx, "#group-members-btn"))
	must(t, p.Click(ctx, `dialog.group-members li[data-user="carol"] .member-remove`))
	must(t, p.Click(ctx, "dialog.confirm .confirm-yes"))
	wait(t, p, `document.querySelector("#group-sub").textContent.startsWith("2 members")`)
	deadline = time.Now().Add(time.Minute)
	for {
		w.agentJSON(t, "bob", "GET", "/v1/groups", nil, &bobGroups)
		if len(bobGroups.Groups) == 1 && len(bobGroups.Groups[0].Members) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's view of the group after carol's removal: %+v", bobGroups)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// At phone width, the group chat alone, with a way back.
	must(t, p.SetSize(ctx, 390, 844, true))
	wait(t, p, `getComputedStyle(document.querySelector("#sidebar")).display === "none" && getComputedStyle(document.querySelector("#group-chat")).display !== "none"`)
	wait(t, p, `document.documentElement.scrollWidth <= window.innerWidth`)
	screenshot(t, p, "phone-group")
	must(t, p.Click(ctx, "#group-chat .back"))
	wait(t, p, `getComputedStyle(document.querySelector("#sidebar")).display !== "none"`)
	must(t, p.SetSize(ctx, 1200, 800, false))

	// Linking a new device: it shows a link code carrying its name; alice
	// checks it in the app (the name shows), then approves it.
	codeFile := filepath.Join(w.dir, "link-code")
	link := exec.Command(w.sotto, "--home", filepath.Join(w.dir, "alice-phone"), "--passphrase-file", w.pass,
		"devices", "link", "--argon2-memory", "8", "--argon2-time", "1", "--relay", relayOf(t, w), "--device-name", "alice's phone", "--code-file", codeFile)
	var linkOut bytes.Buffer
	link.Stdout, link.Stderr = &linkOut, &linkOut
	must(t, link.Start())
	t.Cleanup(func() { link.Process.Kill(); link.Wait() })
	var code []byte
	deadline = time.Now().Add(time.Minute)
	for len(code) == 0 {
		code, _ = os.ReadFile(codeFile)
		if time.Now().After(deadline) {
			t.Fatalf("no link code: %s", linkOut.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	must(t, p.Click(ctx, "#link-btn"))
	wait(t, p, `document.querySelector("dialog.link-dlg[open]")`)
	must(t, p.Focus(ctx, "#link-code"))
	must(t, p.Type(ctx, "sotto-link:not-a-code"))
	must(t, p.Click(ctx, "#link-check"))
	wait(t, p, `document.querySelector("#link-approve").hidden && `+hasText("#link-msg", "malformed link code"))
	must(t, p.Eval(ctx, `document.querySelector("#link-code").value = ""`, nil))
	must(t, p.Focus(ctx, "#link-code"))
	must(t, p.Type(ctx, strings.TrimSpace(string(code))))
	must(t, p.Click(ctx, "#link-check"))
	wait(t, p, hasText(".link-who", "“alice's phone”")+` && !document.querySelector("#link-approve").hidden`)
	audit(t, p, "link a device")
	screenshot(t, p, "link-device")
	must(t, p.Click(ctx, "#link-approve"))
	wait(t, p, hasText("#link-msg", "Approved"))
	done := make(chan error, 1)
	go func() { done <- link.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sotto devices link: %v\n%s", err, linkOut.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("sotto devices link did not finish: %s", linkOut.String())
	}
	if !strings.Contains(linkOut.String(), "linked to alice as device 2") {
		t.Errorf("devices link said: %s", linkOut.String())
	}
	must(t, p.Click(ctx, "dialog.link-dlg .link-close"))
	must(t, p.Click(ctx, "#devices-btn"))
	wait(t, p, `document.querySelector('dialog.devices-dlg[open] li[data-device="2"]')?.textContent.includes("alice's phone")`)

	for _, e := range p.Errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Trusted Type") || strings.HasPrefix(e, "exception") {
			t.Errorf("page error: %s", e)
		}
	}
}

// relayOf reads the relay URL of alice's device (sotto whoami --json).
func relayOf(t *testing.T, w *webWorld) string {
	t.Helper()
	var st struct{ Relay string }
	w.agentJSON(t, "alice", "GET", "/v1/status", nil, &st)
	if st.Relay == "" {
		t.Fatal("no relay URL in alice's status")
	}
	return st.Relay
}
