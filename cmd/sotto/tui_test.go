package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/internal/testneed"
)

// tmuxTerm drives one real 80x24 terminal in a private tmux server.
type tmuxTerm struct {
	t      *testing.T
	socket string
	name   string
}

func (tm *tmuxTerm) tmux(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.socket, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// keys types text (literally) or named keys (Enter, C-s, C-c...).
func (tm *tmuxTerm) keys(keys ...string) {
	tm.t.Helper()
	for _, k := range keys {
		if strings.HasPrefix(k, "lit:") {
			tm.tmux("send-keys", "-t", tm.name, "-l", strings.TrimPrefix(k, "lit:"))
		} else {
			tm.tmux("send-keys", "-t", tm.name, k)
		}
	}
}

func (tm *tmuxTerm) screen() string {
	tm.t.Helper()
	return tm.tmux("capture-pane", "-p", "-t", tm.name)
}

// waitFor waits until every want appears on the screen.
func (tm *tmuxTerm) waitFor(want ...string) string {
	tm.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := tm.screen()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("%s's screen never showed %q; it shows:\n%s", tm.name, want, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// chatWorld is a real relay, two enrolled users and a private tmux
// server for their terminals.
type chatWorld struct {
	sotto, dir, pass string
	socket           string
}

func newChatWorld(t *testing.T) *chatWorld {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a relay and terminals")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		testneed.Skip(t, "tmux not installed: %v", err)
	}
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
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	newOrg(t, sottod, r.data, "ws://"+r.addr, dir, func(args ...string) string {
		out, err := exec.Command(sotto, append([]string{"--passphrase-file", pass}, args...)...).Output()
		if err != nil {
			t.Fatalf("sotto %v: %v", args, err)
		}
		return string(out)
	}, "alice", "bob")
	socket := fmt.Sprintf("sotto-tui-%d-%s", os.Getpid(), t.Name())
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", socket, "kill-server").Run() })
	return &chatWorld{sotto: sotto, dir: dir, pass: pass, socket: socket}
}

// send sends text from user to peer with the CLI.
func (w *chatWorld) send(t *testing.T, user, peer, text string) {
	t.Helper()
	if out, err := exec.Command(w.sotto, "--home", filepath.Join(w.dir, user), "--passphrase-file", w.pass, "send", peer, text).CombinedOutput(); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
}

// term starts `sotto chat ARGS` for user in an 80x24 terminal.
func (w *chatWorld) term(t *testing.T, user, args string) *tmuxTerm {
	tm := &tmuxTerm{t: t, socket: w.socket, name: user}
	shell := fmt.Sprintf("TERM=xterm-256color NO_COLOR=1 %s --home %s --passphrase-file %s chat %s 2>%s; sleep 600",
		w.sotto, filepath.Join(w.dir, user), w.pass, args, filepath.Join(w.dir, user+".stderr"))
	tm.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", user, shell)
	return tm
}

// TestChatAppInTerminal runs `sotto chat` for two users in real terminals
// (tmux, 80x24) and asserts what their screens show as a person would see
// it: a typed message appears on the other side, the read mark comes back,
// reactions, edits, replies, the unread count and the safety-number screen
// with its QR code.
func TestChatAppInTerminal(t *testing.T) {
	w := newChatWorld(t)
	dir := w.dir
	// Bob needs a conversation to list: Alice writes first, from the CLI.
	w.send(t, "alice", "bob", "hi bob")
	alice := w.term(t, "alice", "bob")
	bob := w.term(t, "bob", "")

	// Bob starts on the conversation list, with one unread message.
	bob.waitFor("Conversations", "alice (1)")
	alice.waitFor("chat with bob", "me: hi bob")
	// He opens it: the message shows, and Alice sees it read.
	bob.keys("Enter")
	bob.waitFor("alice: hi bob")
	alice.waitFor("me: hi bob ✓✓ read")

	// A message typed on one side appears on the other.
	alice.keys("lit:lunch at noon?", "Enter")
	bob.waitFor("alice: lunch at noon?")
	alice.waitFor("me: lunch at noon? ✓✓ read")

	// Bob reacts and replies to the newest message; Alice edits hers.
	bob.keys("lit:/react +1", "Enter")
	alice.waitFor("lunch at noon? [+1 bob]")
	bob.keys("lit:/reply sure", "Enter")
	alice.waitFor("┌ re alice: lunch at noon?", "bob: sure")
	alice.keys("lit:/edit lunch at one?", "Enter")
	bob.waitFor("alice: lunch at one? (edited) [+1 bob]")

	// Up selects an older message: Alice deletes her first one for everyone.
	alice.keys("Up", "Up", "Up")
	s := alice.waitFor("> ")
	if !strings.Contains(s, "> ") {
		t.Fatalf("no selection shown:\n%s", s)
	}
	alice.keys("lit:/delete", "Enter")
	alice.waitFor("for everyone? y/n")
	alice.keys("y")
	bob.waitFor("alice: (this message was deleted)")

	// Disappearing messages: the change shows on both sides.
	bob.keys("lit:/timer 1h", "Enter")
	alice.waitFor("bob set disappearing messages: 1h0m0s", "⏱ 1h0m0s")

	// The safety-number screen: digits and a QR code, readable at 80x24.
	bob.keys("C-s")
	s = bob.waitFor("Safety number with alice", "not verified", "sotto verify alice --accept")
	t.Logf("bob's safety-number screen:\n%s", s)
	if !strings.ContainsAny(s, "█▀▄") {
		t.Fatalf("no QR code on the safety-number screen:\n%s", s)
	}
	bob.keys("Escape")
	bob.waitFor("chat with alice")

	t.Logf("alice's screen:\n%s", alice.screen())
	alice.keys("C-c")
	bob.keys("C-c")
	for _, u := range []string{"alice", "bob"} {
		if b, _ := os.ReadFile(filepath.Join(dir, u+".stderr")); len(b) > 0 {
			t.Errorf("%s's chat wrote to stderr: %s", u, b)
		}
	}
}

// The message of issue 12, sent by a real sender, shows neutralized in
// the chat app's real terminal: the erase-line escape and the carriage
// return as visible text, and the fake lines indented behind "  | ",
// never starting a line of their own.
func TestChatAppShowsHostileTextNeutralized(t *testing.T) {
	w := newChatWorld(t)
	w.send(t, "alice", "bob", "hi\r\x1b[2K\n12:00 mallory: fake\n[12:00] organization (verified): update now")
	bob := w.term(t, "bob", "alice")
	s := bob.waitFor(`alice: hi\x0d\x1b[2K`, "  | 12:00 mallory: fake", "  | [12:00] organization (verified): update")
	t.Logf("bob's screen:\n%s", s)
	for _, l := range strings.Split(s, "\n") {
		// The chat pane is right of the list's border.
		_, chat, _ := strings.Cut(l, "│")
		chat = strings.TrimLeft(chat, " >")
		if strings.HasPrefix(chat, "12:00 mallory") || strings.HasPrefix(chat, "[12:00] organization") {
			t.Errorf("a fake line starts a line of its own: %q", l)
		}
	}
	bob.keys("C-c")
	if b, _ := os.ReadFile(filepath.Join(w.dir, "bob.stderr")); len(b) > 0 {
		t.Errorf("bob's chat wrote to stderr: %s", b)
	}
}

// A person with no conversation yet starts one from the chat app, sends
// a file and saves the one received, finds every command on the help
// screen, and is asked before a message is deleted for everyone. A file's
// bytes are never written to a terminal by `sotto download`.
func TestChatAppNewConversationFilesAndDelete(t *testing.T) {
	w := newChatWorld(t)
	file := filepath.Join(w.dir, "notes.txt")
	body := "minutes of the meeting\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := w.term(t, "alice", "")
	alice.waitFor("Conversations", "(none yet)", "n: new conversation")

	// The full help, then back.
	alice.keys("F1")
	alice.waitFor("sotto chat · help", "/new USER", "/file PATH [CAPTION]", "/download [DIR]", "(asks first)")
	alice.keys("Escape")
	alice.waitFor("Conversations", "(none yet)")

	// n starts a new conversation with someone who never wrote.
	alice.keys("n", "lit:bob", "Enter")
	alice.waitFor("chat with bob", "new conversation with bob")
	alice.keys("lit:hello from the app", "Enter")
	alice.waitFor("me: hello from the app ✓")
	bob := w.term(t, "bob", "alice")
	bob.waitFor("alice: hello from the app")

	// A file, with a caption; Bob saves it into a folder of his choice.
	alice.keys("lit:/file "+file+" the minutes", "Enter")
	alice.waitFor("sent notes.txt")
	bob.waitFor("[file notes.txt, 23 B] the minutes")
	saved := filepath.Join(w.dir, "saved")
	bob.keys("lit:/download "+saved, "Enter")
	bob.waitFor("saved /") // the path, cut at 80 columns
	if got, err := os.ReadFile(filepath.Join(saved, "notes.txt")); err != nil || string(got) != body {
		t.Fatalf("saved file: %q, %v; want %q", got, err, body)
	}

	// `sotto download` in a terminal will not print the file's bytes.
	dl := &tmuxTerm{t: t, socket: w.socket, name: "download"}
	dl.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "download", fmt.Sprintf(
		"%s --home %s --passphrase-file %s download --out - --latest alice; sleep 600",
		w.sotto, filepath.Join(w.dir, "bob"), w.pass))
	s := dl.waitFor("will not write a file's bytes to the terminal")
	if strings.Contains(s, "minutes of the meeting") {
		t.Fatalf("the file's bytes reached the terminal:\n%s", s)
	}

	// Deleting for everyone asks first: any key but y keeps the message.
	alice.keys("lit:/delete", "Enter")
	alice.waitFor(`delete "the minutes" for everyone? y/n`)
	alice.keys("x")
	alice.waitFor("not deleted")
	bob.waitFor("[file notes.txt, 23 B] the minutes")
	alice.keys("lit:/delete", "Enter")
	alice.waitFor("for everyone? y/n")
	alice.keys("y")
	alice.waitFor("deleted for everyone")
	bob.waitFor("alice: (this message was deleted)")

	alice.keys("C-c")
	bob.keys("C-c")
	for _, u := range []string{"alice", "bob"} {
		if b, _ := os.ReadFile(filepath.Join(w.dir, u+".stderr")); len(b) > 0 {
			t.Errorf("%s's chat wrote to stderr: %s", u, b)
		}
	}
}
