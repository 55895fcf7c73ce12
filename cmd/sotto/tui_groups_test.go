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

// Everything the chat app does in a 1:1 chat, in a group, in two real
// terminals against a real relay: reactions, replies, edits, a file sent
// and saved, a delete for everyone, the timer; then the group's own
// commands: announcement on and off, roles, description, rename, leave.
// A hostile group name shows neutralized in the list and the title.
func TestChatAppGroupMessaging(t *testing.T) {
	w := newChatWorld(t)
	w.cli(t, "bob", "group", "list") // stocks bob's KeyPackages
	w.cli(t, "alice", "group", "create", "team", "bob")
	w.cli(t, "alice", "group", "send", "team", "lunch at noon?")
	w.cli(t, "alice", "group", "create", "evil\x1b[2J\x1b]0;owned\a\u202eeman", "bob")
	file := filepath.Join(w.dir, "notes.txt")
	const body = "minutes of the meeting\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	bob := w.term(t, "bob", "")
	bob.waitFor("Conversations", `#evil\x1b[2J`, "#team")
	bob.keys("Enter")
	s := bob.waitFor(`group #evil\x1b[2J\x1b]0;owned\x07\u202eeman`)
	if strings.Contains(s, "\x1b") || strings.Contains(s, "\u202e") {
		t.Fatalf("the group's name reached the terminal raw:\n%q", s)
	}
	bob.keys("Tab", "Down", "Enter")
	bob.waitFor("group #team", "alice: lunch at noon?")
	alice := w.term(t, "alice", "'#team'")
	alice.waitFor("group #team", "me: lunch at noon?")
	// The help screen, at 80x24, shows the group's commands.
	alice.keys("F1")
	alice.waitFor("sotto chat · help", "/members (ctrl+s)", "/announce on|off", "/leave ")
	alice.keys("Escape")
	alice.waitFor("group #team")

	// Bob reacts and replies to the newest message; Alice edits hers.
	bob.keys("lit:/react +1", "Enter")
	alice.waitFor("lunch at noon? [+1 bob]")
	bob.keys("lit:/reply sure", "Enter")
	alice.waitFor("┌ re alice: lunch at noon?", "bob: sure")
	alice.keys("lit:/edit lunch at one?", "Enter")
	bob.waitFor("alice: lunch at one? (edited) [+1 bob]")

	// A file with a caption; Bob saves it into a folder of his choice.
	alice.keys("lit:/file "+file+" the minutes", "Enter")
	bob.waitFor("[file notes.txt, 23 B] the minutes")
	saved := filepath.Join(w.dir, "saved")
	if err := os.Mkdir(saved, 0o700); err != nil {
		t.Fatal(err)
	}
	bob.keys("lit:/download "+saved, "Enter")
	bob.waitFor("saved " + filepath.Join(saved, "notes.txt"))
	if got, err := os.ReadFile(filepath.Join(saved, "notes.txt")); err != nil || string(got) != body {
		t.Fatalf("saved file: %q, %v; want %q", got, err, body)
	}

	// Alice deletes her newest message (the file) for everyone, after y.
	alice.keys("lit:/delete", "Enter")
	alice.waitFor("for everyone? y/n")
	alice.keys("y")
	bob.waitFor("alice: (this message was deleted)")

	// The timer, for every member.
	bob.keys("lit:/timer 1h", "Enter")
	alice.waitFor("bob set disappearing messages: 1h0m0s")
	bob.keys("lit:/timer off", "Enter")
	alice.waitFor("bob set disappearing messages: off")

	// Announcement group: bob's post is refused; then he is an admin.
	alice.keys("lit:/announce on", "Enter")
	alice.waitFor("announcement group: on")
	bob.keys("lit:me too", "Enter")
	bob.waitFor("only admins post in this announcement group")
	alice.keys("lit:/admin bob", "Enter")
	alice.waitFor("bob is an admin")
	alice.keys("lit:/describe the lunch crew", "Enter")
	alice.waitFor("description set")
	bob.keys("C-s")
	bob.waitFor("Members of #team (2)", "announcement group: only admins post · the lunch crew", "bob · admin · 1 device · you")
	bob.keys("C-s")
	bob.keys("lit:me too", "Enter")
	alice.waitFor("bob: me too")

	// Rename: the chat stays open under the new name, on both sides.
	alice.keys("lit:/rename crew", "Enter")
	alice.waitFor("group #crew")
	bob.waitFor("group #crew")

	// Bob leaves, after y.
	bob.keys("lit:/leave", "Enter")
	bob.waitFor("leave #crew with all your devices? y/n")
	bob.keys("y")
	// The status says so ("you left #crew", or "you are no longer in
	// #crew" when the agent's event came first); the group is gone.
	s = bob.waitFor("#crew", "select a conversation")
	if !strings.Contains(s, "you left #crew") && !strings.Contains(s, "no longer in #crew") {
		t.Fatalf("nothing says bob left:\n%s", s)
	}
	for _, l := range strings.Split(s, "\n") {
		if list, _, ok := strings.Cut(l, "│"); ok && strings.Contains(list, "#crew") {
			t.Fatalf("the group is still listed after leaving:\n%s", s)
		}
	}

	alice.keys("C-c")
	bob.keys("C-c")
	for _, u := range []string{"alice", "bob"} {
		if b, _ := os.ReadFile(filepath.Join(w.dir, u+".stderr")); len(b) > 0 {
			t.Errorf("%s's chat wrote to stderr: %s", u, b)
		}
	}
}
