package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cli runs the sotto command for user and returns its output.
func (w *chatWorld) cli(t *testing.T, user string, args ...string) string {
	t.Helper()
	out, err := exec.Command(w.sotto, append([]string{"--home", filepath.Join(w.dir, user), "--passphrase-file", w.pass}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sotto %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// Groups in the chat app, in a real terminal against a real relay: the
// group is in the conversation list under its name, its messages show,
// a line typed in it goes to the group, the member pane lists the members
// with their roles and verification state, and a member's post in an
// announcement group is refused with the reason.
func TestChatAppGroups(t *testing.T) {
	w := newChatWorld(t)
	w.cli(t, "bob", "group", "list") // stocks bob's KeyPackages
	w.cli(t, "alice", "group", "create", "team", "bob")
	w.cli(t, "alice", "group", "create", "--announce", "news", "bob")
	w.cli(t, "alice", "group", "send", "team", "hello group")

	bob := w.term(t, "bob", "")
	s := bob.waitFor("Conversations", "#team", "#news")
	if strings.Index(s, "#news") > strings.Index(s, "#team") {
		t.Fatalf("groups not sorted by name:\n%s", s)
	}
	// Open #team from the list (groups come sorted by name).
	bob.keys("Down")
	bob.waitFor(">#team")
	bob.keys("Enter")
	bob.waitFor("group #team", "alice: hello group")

	bob.keys("lit:hi all", "Enter")
	bob.waitFor("me: hi all")
	if out := w.cli(t, "alice", "group", "sync"); !strings.Contains(out, "[team] bob: hi all") {
		t.Fatalf("alice's sync: %s", out)
	}

	// The member pane.
	bob.keys("C-s")
	s = bob.waitFor("Members of #team (2)", "alice · admin · 1 device · unknown", "bob · 1 device · you")
	t.Logf("bob's member pane:\n%s", s)
	bob.keys("C-s")
	bob.waitFor("me: hi all")

	// The announcement group: bob's post is refused.
	bob.keys("Tab", "Up")
	bob.waitFor(">#news")
	bob.keys("Enter")
	bob.waitFor("group #news")
	bob.keys("lit:me too", "Enter")
	bob.waitFor("only admins post in this announcement group")

	bob.keys("C-c")
	if b, _ := os.ReadFile(filepath.Join(w.dir, "bob.stderr")); len(b) > 0 {
		t.Errorf("bob's chat wrote to stderr: %s", b)
	}
}
