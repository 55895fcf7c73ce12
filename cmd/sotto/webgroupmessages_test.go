package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// groupMsg is a group message as the agent's API answers it.
type groupMsg struct {
	ID        string
	Text      string
	From      string
	Kind      string
	QuoteID   string `json:"quote_id"`
	Deleted   bool
	Versions  []struct{ Text string }
	Reactions []struct{ From, Emoji string }
	Attach    *struct{ Name string } `json:"attachment"`
	Timer     uint32                 `json:"timer_seconds"`
}

// groupInfo is a group as the agent's API answers it.
type groupInfo struct {
	ID          string
	Name        string
	Description string
	Policy      *struct {
		Admins   []string
		Announce bool
	}
}

// waitGroupMessages polls user's agent until ok holds for the group's
// messages.
func (w *webWorld) waitGroupMessages(t *testing.T, user, gid, what string, ok func([]groupMsg) bool) []groupMsg {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var r struct{ Messages []groupMsg }
		w.agentJSON(t, user, "GET", "/v1/groups/"+gid+"/messages?limit=0", nil, &r)
		if ok(r.Messages) {
			return r.Messages
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never saw %s: %+v", user, what, r.Messages)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitGroup polls user's agent until ok holds for the group (nil: not
// in it).
func (w *webWorld) waitGroup(t *testing.T, user, gid, what string, ok func(*groupInfo) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var r struct{ Groups []groupInfo }
		w.agentJSON(t, user, "GET", "/v1/groups", nil, &r)
		var g *groupInfo
		for i := range r.Groups {
			if r.Groups[i].ID == gid {
				g = &r.Groups[i]
			}
		}
		if ok(g) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's group never had %s: %+v", user, what, g)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func findGroupMsg(ms []groupMsg, f func(groupMsg) bool) *groupMsg {
	for i := range ms {
		if f(ms[i]) {
			return &ms[i]
		}
	}
	return nil
}

// TestWebAppGroupMessaging: alice, in the web app, does in a group what
// the app does in a 1:1 chat, with bob on his agent, through a real
// relay: a reply, reactions both ways, an edit, a delete for everyone, a
// file sent from the browser, a picture and a file from bob shown and
// opened in it, the timer; then, as admin, makes bob an admin, switches
// the group to announcements, renames and describes it, and leaves it. A
// group whose name, description and member text are markup shows them as
// text.
func TestWebAppGroupMessaging(t *testing.T) {
	w := newWebWorld(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p, err := w.b.NewPage(ctx)
	must(t, err)
	must(t, p.SetSize(ctx, 1200, 800, false))
	must(t, p.Navigate(ctx, w.url))
	wait(t, p, `document.querySelector(".who")?.textContent.startsWith("alice")`)
	wait(t, p, hasText("#group-list", "No groups yet."))

	// A hostile group: bob names it with markup and a bidi override.
	const evil = `<img src=x onerror="window.pwned=1">` + "\u202e" + `<b>evil</b>`
	var hostile struct{ Group groupInfo }
	w.agentJSON(t, "bob", "POST", "/v1/groups", map[string]any{"name": evil, "users": []string{"alice"},
		"description": `<script>window.pwned=2</script>`}, &hostile)
	wait(t, p, fmt.Sprintf(`document.querySelector('.conv.group[data-group="%s"] .conv-name')?.textContent === %s`, hostile.Group.ID, js(evil)))
	must(t, p.Click(ctx, fmt.Sprintf(`.conv.group[data-group="%s"]`, hostile.Group.ID)))
	wait(t, p, `document.querySelector("#group-title").textContent === `+js(evil)+` && document.querySelector("#group-about").textContent === "<script>window.pwned=2</script>"`)
	var injected bool
	must(t, p.Eval(ctx, `!!window.pwned || !!document.querySelector("#app img:not(.preview), #app b, #app script")`, &injected))
	if injected {
		t.Fatal("a group's name or description was inserted as HTML")
	}

	// alice's group with bob.
	var made struct{ Group groupInfo }
	w.agentJSON(t, "alice", "POST", "/v1/groups", map[string]any{"name": "desk", "users": []string{"bob"}}, &made)
	gid := made.Group.ID
	w.waitGroup(t, "bob", gid, "bob in it", func(g *groupInfo) bool { return g != nil })
	wait(t, p, fmt.Sprintf(`document.querySelector('.conv.group[data-group="%s"]')`, gid))
	must(t, p.Click(ctx, fmt.Sprintf(`.conv.group[data-group="%s"]`, gid)))
	wait(t, p, `document.querySelector("#group-title").textContent === "desk"`)
	var bobMsg struct{ Message groupMsg }
	w.agentJSON(t, "bob", "POST", "/v1/groups/"+gid+"/messages", map[string]string{"text": "the budget?"}, &bobMsg)
	budget := bobMsg.Message.ID
	wait(t, p, fmt.Sprintf(`document.querySelector('#group-messages .msg.in[data-id="%s"] .group-from')?.textContent === "bob"`, budget))

	// A reply with the Reply button.
	must(t, p.Click(ctx, fmt.Sprintf(`#group-messages .msg[data-id="%s"] .act-reply`, budget)))
	must(t, p.Type(ctx, "approved"))
	must(t, p.Press(ctx, "Enter", 0))
	ms := w.waitGroupMessages(t, "bob", gid, "alice's reply", func(ms []groupMsg) bool {
		return findGroupMsg(ms, func(m groupMsg) bool { return m.Text == "approved" && m.QuoteID == budget }) != nil
	})
	reply := findGroupMsg(ms, func(m groupMsg) bool { return m.Text == "approved" }).ID
	wait(t, p, fmt.Sprintf(`document.querySelector('#group-messages .msg.out[data-id="%s"] .quote')?.textContent.includes("the budget?")`, reply))

	// Reactions both ways.
	must(t, p.Click(ctx, fmt.Sprintf(`#group-messages .msg[data-id="%s"] .act-react`, budget)))
	must(t, p.Click(ctx, fmt.Sprintf(`#group-messages .msg[data-id="%s"] .react-pick`, budget)))
	w.waitGroupMessages(t, "bob", gid, "alice's reaction", func(ms []groupMsg) bool {
		m := findGroupMsg(ms, func(m groupMsg) bool { return m.ID == budget })
		return m != nil && len(m.Reactions) == 1 && m.Reactions[0].From == "alice" && m.Reactions[0].Emoji == "👍"
	})
	wait(t, p, fmt.Sprintf(`document.querySelector('#group-messages .msg[data-id="%s"] .reactions')?.textContent.includes("👍 1")`, budget))
	w.agentJSON(t, "bob", "POST", "/v1/groups/"+gid+"/messages/"+reply+"/react", map[string]string{"emoji": "❤️"}, nil)
	wait(t, p, fmt.Sprintf(`document.querySelector('#group-messages .msg[data-id="%s"] .reactions')?.textContent.includes("❤️ 1")`, reply))

	// An edit from the keyboard: Up in the empty composer.
	must(t, p.Focus(ctx, "#group-composer-text"))
	must(t, p.Press(ctx, "ArrowUp", 0))
	wait(t, p, `document.querySelector("#group-composer-text").value === "approved"`)
	must(t, p.Eval(ctx, `document.querySelector("#group-composer-text").select()`, nil))
	must(t, p.Type(ctx, "approved, with cuts"))
	must(t, p.Press(ctx, "Enter", 0))
	w.waitGroupMessages(t, "bob", gid, "alice's edit", func(ms []groupMsg) bool {
		m := findGroupMsg(ms, func(m groupMsg) bool { return m.ID == reply })
		return m != nil && m.Text == "approved, with cuts" && len(m.Versions) == 2
	})
	wait(t, p, fmt.Sprintf(`document.querySelector('#group-messages .msg[data-id="%s"] .edited')`, reply))

	// A delete for everyone, after the confirmation.
	must(t, p.Click(ctx, fmt.Sprintf(`#group-messages .msg[data-id="%s"] .act-delete`, reply)))
	must(t, p.Click(ctx, "dialog.confirm .confirm-delete"))
	w.waitGroupMessages(t, "bob", gid, "the delete", func(ms []groupMsg) bool {
		m := findGroupMsg(ms, func(m groupMsg) bool { return m.ID == reply })
		return m != nil && m.Deleted
	})
	wait(t, p, fmt.Sprintf(`document.querySelector('#group-messages .msg[data-id="%s"] .text.deleted')`, reply))

	// A file from the browser: uploaded as bytes, bob's agent decrypts it.
	const body = "line 1 of the budget\n"
	path := filepath.Join(w.dir, "budget.txt")
	must(t, os.WriteFile(path, []byte(body), 0o600))
	must(t, p.SetFiles(ctx, "#group-file", []string{path}))
	ms = w.waitGroupMessages(t, "bob", gid, "alice's file", func(ms []groupMsg) bool {
		return findGroupMsg(ms, func(m groupMsg) bool { return m.Attach != nil && m.Attach.Name == "budget.txt" }) != nil
	})
	file := findGroupMsg(ms, func(m groupMsg) bool { return m.Attach != nil && m.Attach.Name == "budget.txt" })
	var got []byte
	if code := w.agentCall(t, "bob", "GET", "/v1/groups/"+gid+"/messages/"+file.ID+"/content", "", nil, &got); code != 200 || string(got) != body {
		t.Fatalf("bob's copy of alice's file: %d %q", code, got)
	}

	// From bob: a picture shows inline, a file opens with its bytes.
	if code := w.agentCall(t, "bob", "POST", "/v1/groups/"+gid+"/files?name=chart.png", "application/octet-stream", bytes.NewReader(testPNG(t)), nil); code != 200 {
		t.Fatalf("bob sends a picture: %d", code)
	}
	wait(t, p, `[...document.querySelectorAll("#group-messages .msg.in img.preview")].some(i => i.complete && i.naturalWidth === 40)`)
	var notes struct{ Message groupMsg }
	if code := w.agentCall(t, "bob", "POST", "/v1/groups/"+gid+"/files?name=notes.txt&caption=my+notes", "application/octet-stream", strings.NewReader("bob's notes"), &notes); code != 200 {
		t.Fatalf("bob sends a file: %d", code)
	}
	sel := fmt.Sprintf(`#group-messages .msg[data-id="%s"]`, notes.Message.ID)
	wait(t, p, fmt.Sprintf(`document.querySelector('%s .att-name')?.textContent.includes("notes.txt") && document.querySelector('%s .text')?.textContent === "my notes"`, sel, sel))
	// Save: the app hands the browser the bytes it fetched (a blob: URL,
	// clicked as a download); the test reads what the browser would save.
	must(t, p.Eval(ctx, `(() => { window.saved = null; const make = URL.createObjectURL; URL.createObjectURL = (b) => { window.lastBlob = b; return make.call(URL, b); };
		HTMLAnchorElement.prototype.click = function () { const name = this.download; window.lastBlob.text().then((t) => { window.saved = [name, t]; }); }; })()`, nil))
	must(t, p.Click(ctx, sel+" .att-open"))
	wait(t, p, `JSON.stringify(window.saved) === JSON.stringify(["notes.txt", "bob's notes"])`)

	// The timer reaches bob.
	must(t, p.Eval(ctx, `(() => { const s = document.querySelector("#group-timer"); s.value = "3600"; s.dispatchEvent(new Event("change")); })()`, nil))
	w.waitGroupMessages(t, "bob", gid, "the timer", func(ms []groupMsg) bool {
		return findGroupMsg(ms, func(m groupMsg) bool { return m.Kind == "timer" && m.Timer == 3600 }) != nil
	})
	wait(t, p, hasText("#group-messages .msg.system", "disappearing messages"))

	// Roles, announcement, name and description from the members dialog.
	must(t, p.Eval(ctx, `document.querySelector(".toast").hidden = true`, nil))
	must(t, p.Click(ctx, "#group-members-btn"))
	wait(t, p, `document.querySelector('dialog.group-members[open] li[data-user="alice"] .member-role')`)
	audit(t, p, "group members as admin")
	screenshot(t, p, "group-admin")
	must(t, p.Click(ctx, `dialog.group-members li[data-user="bob"] .member-admin`))
	w.waitGroup(t, "bob", gid, "bob an admin", func(g *groupInfo) bool {
		return g != nil && g.Policy != nil && strings.Join(g.Policy.Admins, ",") == "alice,bob"
	})
	must(t, p.Click(ctx, "#group-members-btn"))
	wait(t, p, `document.querySelector('dialog.group-members[open] li[data-user="bob"] .member-role')`)
	must(t, p.Click(ctx, "#group-announce"))
	w.waitGroup(t, "bob", gid, "announcements on", func(g *groupInfo) bool { return g != nil && g.Policy != nil && g.Policy.Announce })
	wait(t, p, hasText("#group-sub", "only admins post"))
	must(t, p.Click(ctx, "#group-members-btn"))
	wait(t, p, `document.querySelector("dialog.group-members[open] #group-rename")`)
	must(t, p.Eval(ctx, `document.querySelector("#group-rename").value = ""`, nil))
	must(t, p.Focus(ctx, "#group-rename"))
	must(t, p.Type(ctx, "news desk"))
	must(t, p.Focus(ctx, "#group-description"))
	must(t, p.Type(ctx, "what runs tomorrow"))
	must(t, p.Click(ctx, "#group-rename-btn"))
	w.waitGroup(t, "bob", gid, "the new name", func(g *groupInfo) bool {
		return g != nil && g.Name == "news desk" && g.Description == "what runs tomorrow"
	})
	wait(t, p, `document.querySelector("#group-title").textContent === "news desk" && document.querySelector("#group-about").textContent === "what runs tomorrow"`)
	wait(t, p, fmt.Sprintf(`document.querySelector('.conv.group[data-group="%s"] .conv-name')?.textContent === "news desk"`, gid))

	// Leaving, after the confirmation: the group goes from alice's list.
	must(t, p.Click(ctx, "#group-members-btn"))
	must(t, p.Click(ctx, "#group-leave"))
	must(t, p.Click(ctx, "dialog.confirm .confirm-yes"))
	wait(t, p, fmt.Sprintf(`!document.querySelector('.conv.group[data-group="%s"]') && document.querySelector("#group-chat").hidden`, gid))
	w.waitGroup(t, "alice", gid, "alice gone", func(g *groupInfo) bool { return g == nil })

	must(t, p.Eval(ctx, `!!window.pwned`, &injected))
	if injected {
		t.Error("page script ran from hostile text")
	}
	for _, e := range p.Errors() {
		if strings.Contains(e, "Content Security Policy") || strings.Contains(e, "Trusted Type") || strings.HasPrefix(e, "exception") {
			t.Errorf("page error: %s", e)
		}
	}
}
