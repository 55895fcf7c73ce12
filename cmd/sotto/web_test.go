package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/internal/browser"
)

// webWorld is two people on a real relay, each with a real agent (sotto
// up); alice also runs `sotto web` and uses it in headless Chromium.
type webWorld struct {
	dir, sotto, pass string
	url              string // alice's login URL
	b                *browser.Browser
}

func launchChromium(t *testing.T, extra ...string) *browser.Browser {
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

// newWebWorld starts the world; inAgent: alice's agent serves the web app
// itself (sotto agent --web) instead of sotto web beside it.
func newWebWorld(t *testing.T, inAgent bool) *webWorld {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a relay, two agents and a browser")
	}
	b := launchChromium(t)
	sottod := buildSottod(t)
	dir := t.TempDir()
	sotto := filepath.Join(dir, "sotto")
	if out, err := exec.Command("go", "build", "-o", sotto, "sotto/cmd/sotto").CombinedOutput(); err != nil {
		t.Fatalf("go build sotto: %v\n%s", err, out)
	}
	r := &relayProc{bin: sottod, data: filepath.Join(dir, "relay"), addr: "127.0.0.1:0"}
	if err := os.MkdirAll(r.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	w := &webWorld{dir: dir, sotto: sotto, pass: filepath.Join(dir, "pass"), b: b}
	if err := os.WriteFile(w.pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// carol is the organization's admin, on a device with no agent, so
	// that she can send notices while alice and bob run theirs.
	newOrg(t, sottod, r.data, "ws://"+r.addr, dir, func(args ...string) string { return w.run(t, args...) }, "carol", "alice", "bob")
	users := []string{"alice", "bob"}
	if inAgent {
		users = users[1:]
	}
	for _, u := range users {
		w.run(t, "--home", w.home(u), "--receipt-delay", "100ms", "up")
		t.Cleanup(func() { exec.Command(sotto, "--home", w.home(u), "down").Run() })
	}
	// As a person runs it: `sotto web` beside the agent that `sotto up`
	// started, or `sotto agent --web` in the foreground. The URL is on
	// standard output.
	args := []string{"--home", w.home("alice"), "web"}
	if inAgent {
		args = []string{"--home", w.home("alice"), "--passphrase-file", w.pass, "--receipt-delay", "100ms", "agent", "--web", "127.0.0.1:0"}
	}
	cmd := exec.Command(sotto, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "Sotto is at "); ok {
			w.url = u
			break
		}
	}
	if w.url == "" {
		cmd.Wait()
		t.Fatalf("sotto %v printed no URL: %s", args, stderr.String())
	}
	go io.Copy(io.Discard, stdout)
	return w
}

func (w *webWorld) home(user string) string { return filepath.Join(w.dir, user) }

func (w *webWorld) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(w.sotto, append([]string{"--passphrase-file", w.pass}, args...)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sotto %v: %v\n%s", args, err, errb.String())
	}
	return string(out)
}

// agentCall calls user's agent API over its socket, as any front end does.
func (w *webWorld) agentCall(t *testing.T, user, method, path, ctype string, body io.Reader, out any) int {
	t.Helper()
	sock := filepath.Join(w.home(user), "agent.sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequest(method, "http://sotto"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if b, ok := out.(*[]byte); ok {
			*b, err = io.ReadAll(resp.Body)
		} else {
			err = json.NewDecoder(resp.Body).Decode(out)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func (w *webWorld) agentJSON(t *testing.T, user, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	if code := w.agentCall(t, user, method, path, "application/json", body, out); code >= 300 {
		t.Fatalf("%s %s on %s's agent: %d", method, path, user, code)
	}
}

// apiMessage is what the test reads of the API's Message.
type apiMessage struct {
	ID        string `json:"id"`
	Text      string `json:"text"`
	QuoteID   string `json:"quote_id"`
	Outgoing  bool   `json:"outgoing"`
	Deleted   bool   `json:"deleted"`
	Reactions []struct {
		From, Emoji string
	} `json:"reactions"`
	Attachment *struct {
		Name     string `json:"name"`
		Size     int64  `json:"size"`
		ViewOnce bool   `json:"view_once"`
	} `json:"attachment"`
}

// waitMessages polls user's history with peer until ok holds.
func (w *webWorld) waitMessages(t *testing.T, user, peer, what string, ok func([]apiMessage) bool) []apiMessage {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var r struct{ Messages []apiMessage }
		w.agentJSON(t, user, "GET", "/v1/conversations/"+peer+"/messages?limit=0", nil, &r)
		if ok(r.Messages) {
			return r.Messages
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw %s: %+v", user, what, r.Messages)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func find(ms []apiMessage, f func(apiMessage) bool) *apiMessage {
	for i := range ms {
		if f(ms[i]) {
			return &ms[i]
		}
	}
	return nil
}

func js(s string) string { b, _ := json.Marshal(s); return string(b) }

// hasText is a JavaScript condition: an element matching sel contains text.
func hasText(sel, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll(%s)].some(e => e.textContent.includes(%s))`, js(sel), js(text))
}

// msgID is the id of the first message matching sel whose text contains text.
func msgID(t *testing.T, ctx context.Context, p *browser.Page, sel, text string) string {
	t.Helper()
	var id string
	if err := p.Eval(ctx, fmt.Sprintf(`[...document.querySelectorAll(%s)].find(e => e.textContent.includes(%s))?.dataset.id || ""`, js(sel), js(text)), &id); err != nil || id == "" {
		t.Fatalf("no message %q in %s: %v", text, sel, err)
	}
	return id
}

// wait waits up to a minute for cond to hold in the page, and says what
// the page showed if it does not.
func wait(t *testing.T, p *browser.Page, cond string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitFor(ctx, cond); err != nil {
		var shown string
		p.Eval(context.Background(), `document.body.innerText`, &shown)
		t.Fatalf("%v\nthe page shows:\n%s", err, shown)
	}
}

// audit fails the test on accessibility problems in the page as it is.
func audit(t *testing.T, p *browser.Page, where string) {
	t.Helper()
	problems, err := p.Audit(context.Background())
	must(t, err)
	for _, pr := range problems {
		t.Errorf("accessibility (%s): %s", where, pr)
	}
}

// screenshot saves the page as docs' screenshot name when
// SOTTO_SCREENSHOTS names a folder (docs/screenshots, to refresh them).
func screenshot(t *testing.T, p *browser.Page, name string) {
	t.Helper()
	dir := os.Getenv("SOTTO_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := p.Screenshot(context.Background())
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// testPNG is a small picture.
func testPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for x := range 40 {
		for y := range 30 {
			img.Set(x, y, color.RGBA{uint8(x * 6), uint8(y * 8), 120, 255})
		}
	}
	var b bytes.Buffer
	must(t, png.Encode(&b, img))
	return b.Bytes()
}

// TestWebApp: alice uses the web app in Chromium, bob his agent; they
// chat both ways with every feature the app has, through a real relay.
func TestWebApp(t *testing.T) {
	w := newWebWorld(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := w.b.NewPage(ctx)
	must(t, err)
	must(t, p.SetSize(ctx, 1200, 800, false))

	// Bob writes first, before alice opens the app: one unread message.
	w.agentJSON(t, "bob", "POST", "/v1/conversations/alice/messages", map[string]string{"text": "hi alice, it's bob"}, nil)
	must(t, p.Navigate(ctx, w.url))
	wait(t, p, `document.querySelector(".who")?.textContent.startsWith("alice")`)
	wait(t, p, `document.querySelector('.conv[data-peer="bob"] .badge')?.textContent === "1"`)
	wait(t, p, `document.title === "(1) Sotto"`)

	// She opens it from the keyboard: the message shows, the count goes,
	// and bob sees it read.
	must(t, p.Focus(ctx, `.conv[data-peer="bob"]`))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, hasText(".msg.in .text", "hi alice, it's bob"))
	wait(t, p, hasText(".day", "Today"))
	wait(t, p, `!document.querySelector('.conv[data-peer="bob"] .badge') && document.title === "Sotto"`)

	// Alice types and sends with Enter; bob's agent receives it, and his
	// read receipt turns her mark into "read".
	must(t, p.Focus(ctx, "#composer-text"))
	must(t, p.Type(ctx, "hello bob, from the browser"))
	must(t, p.Press(ctx, "Enter", 0))
	ms := w.waitMessages(t, "bob", "alice", "alice's message", func(ms []apiMessage) bool {
		return find(ms, func(m apiMessage) bool { return m.Text == "hello bob, from the browser" }) != nil
	})
	hello := find(ms, func(m apiMessage) bool { return m.Text == "hello bob, from the browser" })
	wait(t, p, `document.querySelector(".msg.out .mark")`)
	w.agentJSON(t, "bob", "POST", "/v1/conversations/alice/read", map[string]any{"ids": []string{hello.ID}}, nil)
	wait(t, p, `document.querySelector(".msg.out .mark.read")`)

	// Bob replies to it, quoting it; the reply shows with the quote.
	w.agentJSON(t, "bob", "POST", "/v1/conversations/alice/messages", map[string]string{"text": "got it", "quote_id": hello.ID}, nil)
	wait(t, p, `[...document.querySelectorAll(".msg.in")].some(e => e.querySelector(".text")?.textContent === "got it" && e.querySelector(".quote")?.textContent.includes("hello bob, from the browser"))`)

	// Alice replies to bob's message with the Reply button.
	gotIt := msgID(t, ctx, p, ".msg.in", "got it")
	must(t, p.Click(ctx, fmt.Sprintf(`.msg[data-id="%s"] .act-reply`, gotIt)))
	must(t, p.Type(ctx, "great"))
	must(t, p.Press(ctx, "Enter", 0))
	w.waitMessages(t, "bob", "alice", "alice's reply", func(ms []apiMessage) bool {
		return find(ms, func(m apiMessage) bool { return m.Text == "great" && m.QuoteID == gotIt }) != nil
	})

	// Reactions both ways.
	must(t, p.Click(ctx, fmt.Sprintf(`.msg[data-id="%s"] .act-react`, gotIt)))
	must(t, p.Click(ctx, fmt.Sprintf(`.msg[data-id="%s"] .react-pick`, gotIt)))
	w.waitMessages(t, "bob", "alice", "alice's reaction", func(ms []apiMessage) bool {
		m := find(ms, func(m apiMessage) bool { return m.ID == gotIt })
		return m != nil && len(m.Reactions) == 1 && m.Reactions[0].Emoji == "👍"
	})
	w.agentJSON(t, "bob", "POST", "/v1/conversations/alice/messages/"+hello.ID+"/reaction", map[string]string{"emoji": "❤️"}, nil)
	wait(t, p, fmt.Sprintf(`document.querySelector('.msg[data-id="%s"] .reactions')?.textContent.includes("❤️ 1")`, hello.ID))

	// Alice edits her last message from the keyboard: Up in the empty
	// composer, new text, Enter.
	must(t, p.Focus(ctx, "#composer-text"))
	must(t, p.Press(ctx, "ArrowUp", 0))
	wait(t, p, `document.querySelector("#composer-text").value === "great"`)
	must(t, p.Eval(ctx, `document.querySelector("#composer-text").select()`, nil))
	must(t, p.Type(ctx, "great, thanks"))
	must(t, p.Press(ctx, "Enter", 0))
	w.waitMessages(t, "bob", "alice", "alice's edit", func(ms []apiMessage) bool {
		return find(ms, func(m apiMessage) bool { return m.Text == "great, thanks" }) != nil
	})
	wait(t, p, hasText(".msg.out", "edited"))

	// Delete for everyone, after confirming (cancel first: nothing goes).
	must(t, p.Click(ctx, fmt.Sprintf(`.msg[data-id="%s"] .act-delete`, hello.ID)))
	wait(t, p, `document.querySelector("dialog.confirm[open]")`)
	must(t, p.Press(ctx, "Escape", 0))
	wait(t, p, `!document.querySelector("dialog.confirm")`)
	must(t, p.Click(ctx, fmt.Sprintf(`.msg[data-id="%s"] .act-delete`, hello.ID)))
	must(t, p.Click(ctx, "dialog.confirm .confirm-delete"))
	w.waitMessages(t, "bob", "alice", "the delete", func(ms []apiMessage) bool {
		m := find(ms, func(m apiMessage) bool { return m.ID == hello.ID })
		return m != nil && m.Deleted
	})

	// Text from the other side is text: markup shows as typed, runs nothing.
	w.agentJSON(t, "bob", "POST", "/v1/conversations/alice/messages", map[string]string{"text": `<img src=x onerror="window.pwned=1"><b>bold</b>`}, nil)
	wait(t, p, hasText(".msg.in .text", `<img src=x onerror="window.pwned=1"><b>bold</b>`))
	var injected bool
	must(t, p.Eval(ctx, `!!window.pwned || !!document.querySelector(".messages img:not(.preview), .messages b")`, &injected))
	if injected {
		t.Error("a peer's text was inserted as HTML")
	}

	// Disappearing timer, set in the browser, reaches bob's agent.
	must(t, p.Eval(ctx, `(() => { const s = document.querySelector("#timer"); s.value = "3600"; s.dispatchEvent(new Event("change")); })()`, nil))
	deadline := time.Now().Add(time.Minute)
	for {
		var r struct{ Seconds int }
		w.agentJSON(t, "bob", "GET", "/v1/conversations/alice/timer", nil, &r)
		if r.Seconds == 3600 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's timer never became 1 hour")
		}
		time.Sleep(100 * time.Millisecond)
	}
	wait(t, p, hasText(".msg.system", "disappearing messages"))
	must(t, p.Eval(ctx, `(() => { const s = document.querySelector("#timer"); s.value = "0"; s.dispatchEvent(new Event("change")); })()`, nil))

	// Attachments: a picture from bob shows inline; a 20 MB file from alice
	// arrives whole at bob's, with progress shown while it goes up.
	pic := testPNG(t)
	if code := w.agentCall(t, "bob", "POST", "/v1/conversations/alice/files?name=pic.png", "application/octet-stream", bytes.NewReader(pic), nil); code != 200 {
		t.Fatalf("bob sends a picture: %d", code)
	}
	wait(t, p, `[...document.querySelectorAll(".msg.in img.preview")].some(i => i.complete && i.naturalWidth === 40)`)

	big := make([]byte, 20<<20)
	rand.Read(big)
	bigPath := filepath.Join(w.dir, "report.bin")
	must(t, os.WriteFile(bigPath, big, 0o600))
	must(t, p.Eval(ctx, `window.sawProgress = false; new MutationObserver(() => { const e = document.querySelector("#upload-progress"); if (!e.hidden && e.value > 0 && e.value < 1) window.sawProgress = true; }).observe(document.querySelector("#upload-progress"), {attributes: true})`, nil))
	must(t, p.SetFiles(ctx, "#file", []string{bigPath}))
	ms = w.waitMessages(t, "bob", "alice", "the 20 MB file", func(ms []apiMessage) bool {
		return find(ms, func(m apiMessage) bool { return m.Attachment != nil && m.Attachment.Name == "report.bin" }) != nil
	})
	att := find(ms, func(m apiMessage) bool { return m.Attachment != nil && m.Attachment.Name == "report.bin" })
	var got []byte
	if code := w.agentCall(t, "bob", "GET", "/v1/attachments/"+att.ID+"/content", "", nil, &got); code != 200 || sha256.Sum256(got) != sha256.Sum256(big) {
		t.Fatalf("bob's copy of the file: %d, %d bytes", code, len(got))
	}
	var sawProgress bool
	must(t, p.Eval(ctx, "window.sawProgress", &sawProgress))
	if !sawProgress {
		t.Log("no upload progress between 0 and 1 was seen (the upload may have been too fast)")
	}

	// Drag and drop: a file dropped on the chat is sent.
	must(t, p.Eval(ctx, `(() => { const dt = new DataTransfer(); dt.items.add(new File(["dropped on the chat"], "dropped.txt", {type: "text/plain"}));
		document.querySelector("#chat").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true})); })()`, nil))
	ms = w.waitMessages(t, "bob", "alice", "the dropped file", func(ms []apiMessage) bool {
		return find(ms, func(m apiMessage) bool { return m.Attachment != nil && m.Attachment.Name == "dropped.txt" }) != nil
	})
	dropped := find(ms, func(m apiMessage) bool { return m.Attachment != nil && m.Attachment.Name == "dropped.txt" })
	if code := w.agentCall(t, "bob", "GET", "/v1/attachments/"+dropped.ID+"/content", "", nil, &got); code != 200 || string(got) != "dropped on the chat" {
		t.Errorf("bob's copy of the dropped file: %d %q", code, got)
	}

	// View once: alice opens it once; after that it is gone.
	if code := w.agentCall(t, "bob", "POST", "/v1/conversations/alice/files?name=once.png&view_once=true", "application/octet-stream", bytes.NewReader(pic), nil); code != 200 {
		t.Fatalf("bob sends a view-once picture: %d", code)
	}
	wait(t, p, `document.querySelector(".view-once-open")`)
	must(t, p.Click(ctx, ".view-once-open"))
	wait(t, p, `(() => { const i = document.querySelector("dialog.once[open] img.once-view"); return i && i.complete && i.naturalWidth === 40 })()`)
	must(t, p.Click(ctx, "dialog.once .once-close"))
	wait(t, p, `!document.querySelector("dialog.once") && !document.querySelector(".view-once-open") && `+hasText(".att-note", "opened"))

	// Search finds a message and opens it.
	must(t, p.Focus(ctx, "#search"))
	must(t, p.Type(ctx, "got it"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, hasText("#conv-list .conv.result", "got it"))
	must(t, p.Press(ctx, "Escape", 0))
	wait(t, p, `document.querySelector('#conv-list .conv[data-peer="bob"]:not(.result)')`)

	// Safety numbers: alice sees the same digits bob's agent shows for
	// her, and a QR code of the scannable form; she marks bob verified.
	var bobSees struct{ Digits string }
	w.agentJSON(t, "bob", "GET", "/v1/contacts/alice/safety-number", nil, &bobSees)
	must(t, p.Click(ctx, "#safety-btn"))
	wait(t, p, `(() => { const i = document.querySelector("dialog.safety[open] img.sn-qr"); return i && i.complete && i.naturalWidth > 100 })()`)
	var digits string
	must(t, p.Eval(ctx, `[...document.querySelectorAll(".sn-digits span")].map(s => s.textContent).join("")`, &digits))
	if want := strings.Join(strings.Fields(bobSees.Digits), ""); digits != want || len(digits) != 60 {
		t.Errorf("alice's page shows safety number %q, bob's agent %q", digits, want)
	}
	audit(t, p, "safety number")
	screenshot(t, p, "safety-number")
	must(t, p.Click(ctx, "dialog.safety .sn-verify"))
	wait(t, p, hasText(".sn-state", "verified"))
	must(t, p.Click(ctx, "dialog.safety .sn-close"))
	wait(t, p, `!document.querySelector("#chat .verified").hidden`)
	var contacts struct {
		Contacts []struct {
			User     string
			Verified bool
		}
	}
	w.agentJSON(t, "alice", "GET", "/v1/contacts", nil, &contacts)
	if len(contacts.Contacts) == 0 || !contacts.Contacts[0].Verified {
		t.Errorf("alice's agent after verifying: %+v", contacts)
	}

	// Her devices, as the relay lists them: this one.
	must(t, p.Click(ctx, "#devices-btn"))
	wait(t, p, `document.querySelector('dialog.devices-dlg[open] li[data-device="1"] .device-current')`)
	audit(t, p, "devices")
	must(t, p.Click(ctx, "dialog.devices-dlg .devices-close"))
	wait(t, p, `!document.querySelector("dialog.devices-dlg")`)

	// A notice from the organization reaches the app as it arrives.
	w.run(t, "--home", w.home("carol"), "admin", "notice", "The office is closed on Friday.")
	wait(t, p, `document.querySelector("#notices-btn").textContent === "Notices (1)"`)
	must(t, p.Click(ctx, "#notices-btn"))
	wait(t, p, hasText("dialog.notices[open] li", "The office is closed on Friday."))
	must(t, p.Press(ctx, "Escape", 0))

	// Lock: the agent locks, the app shows the lock screen; the wrong
	// passphrase is refused, the right one unlocks.
	w.agentJSON(t, "alice", "POST", "/v1/lock", nil, nil)
	wait(t, p, `!document.querySelector("#lock").hidden`)
	audit(t, p, "lock screen")
	must(t, p.Focus(ctx, "#passphrase"))
	must(t, p.Type(ctx, "wrong passphrase"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, hasText("#lock-msg", "Wrong passphrase"))
	must(t, p.Type(ctx, "correct horse battery staple"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, `document.querySelector("#lock").hidden && document.querySelector(".msg")`)

	wait(t, p, `document.querySelector(".conn").classList.contains("on")`)
	must(t, p.Eval(ctx, `document.querySelector(".toast").hidden = true`, nil))
	audit(t, p, "chat")
	screenshot(t, p, "desktop-light")
	must(t, p.SetDarkMode(ctx, true))
	screenshot(t, p, "desktop-dark")
	var bg string
	must(t, p.Eval(ctx, `getComputedStyle(document.body).backgroundColor`, &bg))
	if bg != "rgb(20, 23, 26)" {
		t.Errorf("dark theme background: %s", bg)
	}
	must(t, p.SetDarkMode(ctx, false))

	// At phone width: the list or the chat, one at a time, nothing wider
	// than the screen, and a way back.
	must(t, p.SetSize(ctx, 390, 844, true))
	must(t, p.Focus(ctx, "#composer-text"))
	must(t, p.Press(ctx, "Escape", 0)) // leaves the chat
	wait(t, p, `getComputedStyle(document.querySelector("#sidebar")).display !== "none" && getComputedStyle(document.querySelector("#chat")).display === "none"`)
	screenshot(t, p, "phone-list")
	must(t, p.Click(ctx, `.conv[data-peer="bob"]`))
	wait(t, p, `getComputedStyle(document.querySelector("#sidebar")).display === "none" && getComputedStyle(document.querySelector("#chat")).display !== "none"`)
	wait(t, p, `document.documentElement.scrollWidth <= window.innerWidth`)
	screenshot(t, p, "phone-chat")
	must(t, p.Click(ctx, "#chat .back"))
	wait(t, p, `getComputedStyle(document.querySelector("#sidebar")).display !== "none"`)

	for _, e := range p.Errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Trusted Type") || strings.HasPrefix(e, "exception") {
			t.Errorf("page error: %s", e)
		}
	}
}

// TestWebAppInAgent: the agent's own setting (sotto agent --web) serves the
// app with the API mounted directly; a message goes both ways and the
// lock screen follows the agent.
func TestWebAppInAgent(t *testing.T) {
	w := newWebWorld(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := w.b.NewPage(ctx)
	must(t, err)
	must(t, p.Navigate(ctx, w.url))
	wait(t, p, `document.querySelector(".who")?.textContent.startsWith("alice")`)
	must(t, p.Focus(ctx, "#new-peer"))
	must(t, p.Type(ctx, "bob"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, `document.querySelector("#chat-title")?.textContent === "bob"`)
	must(t, p.Focus(ctx, "#composer-text"))
	must(t, p.Type(ctx, "from the agent's own web server"))
	must(t, p.Press(ctx, "Enter", 0))
	w.waitMessages(t, "bob", "alice", "alice's message", func(ms []apiMessage) bool {
		return find(ms, func(m apiMessage) bool { return m.Text == "from the agent's own web server" }) != nil
	})
	w.agentJSON(t, "bob", "POST", "/v1/conversations/alice/messages", map[string]string{"text": "received"}, nil)
	wait(t, p, hasText(".msg.in .text", "received"))
	must(t, p.Click(ctx, "#lock-btn"))
	wait(t, p, `!document.querySelector("#lock").hidden`)
	must(t, p.Focus(ctx, "#passphrase"))
	must(t, p.Type(ctx, "correct horse battery staple"))
	must(t, p.Press(ctx, "Enter", 0))
	wait(t, p, `document.querySelector("#lock").hidden && `+hasText(".msg.in .text", "received"))
}
