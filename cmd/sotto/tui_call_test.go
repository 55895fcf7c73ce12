package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestChatAppCalls: a call to a person in `sotto chat` rings there (the
// ring line names the caller; ctrl+y answers), and the conversation's
// history shows it with its duration; a call placed with /call is answered
// by the other side; and `sotto call` beside the running chat app goes
// through its agent instead of being refused.
func TestChatAppCalls(t *testing.T) {
	w := newChatWorld(t)
	w.send(t, "alice", "bob", "hi bob")
	bob := w.term(t, "bob", "alice")
	bob.waitFor("hi bob")
	home := func(u string) string { return filepath.Join(w.dir, u) }

	// Alice calls from the CLI; Bob answers in the chat app.
	done := make(chan []byte, 1)
	go func() {
		out, _ := exec.Command(w.sotto, "--home", home("alice"), "--passphrase-file", w.pass, "call", "bob", "--duration", "2s").CombinedOutput()
		done <- out
	}()
	bob.waitFor("incoming call from alice", "ctrl+y answer")
	bob.keys("C-y")
	bob.waitFor("in call with alice")
	if out := <-done; !strings.Contains(string(out), "ended after") {
		t.Errorf("alice's call: %s", out)
	}
	bob.waitFor("[incoming call: answered, ")

	// Bob calls Alice from the chat app; her listener answers.
	listen := exec.Command(w.sotto, "--home", home("alice"), "--passphrase-file", w.pass, "listen", "--auto-answer", "--exit-after-calls", "2")
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = listen.Process.Kill(); _ = listen.Wait() }()
	bob.keys("lit:/call", "Enter")
	bob.waitFor("in call with alice")
	bob.keys("lit:/hangup", "Enter")
	bob.waitFor("[outgoing call: answered")

	// sotto call for Bob's device, beside his running chat app: through
	// its agent.
	out, err := exec.Command(w.sotto, "--home", home("bob"), "--passphrase-file", w.pass, "call", "alice", "--duration", "1s").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "through the agent") {
		t.Fatalf("sotto call beside the chat app: %v\n%s", err, out)
	}
	bob.waitFor("call with alice ended")
}
