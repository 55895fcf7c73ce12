package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sotto/internal/testneed"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits (up to a minute) until buf holds want after offset from,
// and returns the offset after it.
func waitFor(t *testing.T, buf *syncBuffer, from int, want string) int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		s := buf.String()
		if i := strings.Index(s[from:], want); i >= 0 {
			return from + i + len(want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%q never came; output:\n%s", want, buf.String())
	return 0
}

// TestChatLineIdleLock: under a policy with an idle lock, sotto chat's line
// mode locks after the timeout without input (8 s: long enough that the
// test types its next line well before it, even on a loaded machine),
// clears the screen, counts a wrong passphrase, unlocks with the right one
// and sends again.
func TestChatLineIdleLock(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	bin := buildSottod(t)
	dir := t.TempDir()
	r := &relayProc{bin: bin, data: filepath.Join(dir, "relay"), addr: "127.0.0.1:0"}
	if err := os.MkdirAll(r.data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	relayURL := "ws://" + r.addr
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sotto := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(ctx, append([]string{"--passphrase-file", pass}, args...), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("sotto %v: exit %d\n%s%s", args, code, out.String(), errb.String())
		}
		return out.String()
	}
	alice, bob := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	newOrg(t, bin, r.data, relayURL, dir, sotto, "alice", "bob")
	sotto("--home", alice, "admin", "policy", "set", "--idle-lock", "8s")

	stdin, w := io.Pipe()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--home", bob, "--passphrase-file", pass, "chat", "--line", "alice"}, stdin, &out, &errb)
	}()
	t.Cleanup(func() { w.Close() })
	at := waitFor(t, &out, 0, "locked after 8s without input")
	if !strings.Contains(out.String(), clearScreen) {
		t.Fatal("the screen was not cleared")
	}
	if _, err := io.WriteString(w, "typo\n"); err != nil {
		t.Fatal(err)
	}
	at = waitFor(t, &out, at, "wrong passphrase (9 attempts left")
	if _, err := io.WriteString(w, "correct horse battery staple\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &out, at, "unlocked")
	if _, err := io.WriteString(w, "sent after the unlock\n"); err != nil {
		t.Fatal(err)
	}
	// It locks again when idle; closing the input then ends the chat.
	waitFor(t, &out, at, "locked after 8s without input")
	w.Close()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("chat exited %d: %s", code, errb.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("chat did not end at the end of its input")
	}
	if got := sotto("--home", alice, "listen", "--drain"); !strings.Contains(got, "sent after the unlock") {
		t.Fatalf("alice did not get the message sent after the unlock: %s", got)
	}
}

// TestChatAppIdleLock: the terminal chat app (tmux, 80x24) locks after the
// policy's idle lock timeout: the conversation leaves the screen, a wrong
// passphrase is counted, the right one brings the app back with what
// arrived while it was locked.
func TestChatAppIdleLock(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay and a terminal")
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
	defer r.stop()
	pass := filepath.Join(dir, "pass")
	if err := os.WriteFile(pass, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", filepath.Base(name), args, err, out)
		}
		return string(out)
	}
	alice, bob := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	newOrg(t, sottod, r.data, "ws://"+r.addr, dir, func(args ...string) string {
		return run(sotto, append([]string{"--passphrase-file", pass}, args...)...)
	}, "alice", "bob")
	run(sotto, "--home", alice, "--passphrase-file", pass, "admin", "policy", "set", "--idle-lock", "3s")
	run(sotto, "--home", alice, "--passphrase-file", pass, "send", "bob", "hi bob")

	socket := fmt.Sprintf("sotto-idle-%d", os.Getpid())
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", socket, "kill-server").Run() })
	tm := &tmuxTerm{t: t, socket: socket, name: "bob"}
	shell := fmt.Sprintf("TERM=xterm-256color NO_COLOR=1 %s --home %s --passphrase-file %s chat alice 2>%s; echo EXITED; sleep 600",
		sotto, bob, pass, filepath.Join(dir, "bob.stderr"))
	tm.tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "bob", shell)
	tm.waitFor("chat with alice", "alice: hi bob")

	s := tm.waitFor("sotto · locked", "Passphrase:")
	if strings.Contains(s, "hi bob") {
		t.Fatalf("the conversation is still on the locked screen:\n%s", s)
	}
	run(sotto, "--home", alice, "--passphrase-file", pass, "send", "bob", "while you were away")
	tm.keys("lit:typo", "Enter")
	tm.waitFor("wrong passphrase (9 attempts left")
	tm.keys("lit:correct horse battery staple", "Enter")
	tm.waitFor("chat with alice", "alice: hi bob", "alice: while you were away")
	tm.keys("C-c")
	tm.waitFor("EXITED")
	if b, _ := os.ReadFile(filepath.Join(dir, "bob.stderr")); len(b) > 0 {
		t.Errorf("the chat wrote to stderr: %s", b)
	}
}
