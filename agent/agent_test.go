package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/internal/relaytest"
	"sotto/relay/sqlitestore"
)

const testPass = "correct horse battery staple"

// testOrg is a real relay (SQLite, WebSockets on 127.0.0.1, attachments)
// and its organization (internal/relaytest).
type testOrg struct {
	*relaytest.Relay
	st *sqlitestore.Store
}

func startRelay(t *testing.T) *testOrg {
	t.Helper()
	r := relaytest.Start(t, relaytest.Options{Blobs: true})
	return &testOrg{Relay: r, st: r.Store}
}

// enroll enrolls user in a new home folder and returns the folder.
func (r *testOrg) enroll(t *testing.T, user string) string {
	t.Helper()
	return r.Enroll(t, user, []byte(testPass))
}

// runningAgent is an agent serving its socket, run until the test ends.
type runningAgent struct {
	a   *Agent
	api *api.Client
}

func startAgent(t *testing.T, home string, mounts ...Mount) *runningAgent {
	t.Helper()
	return startAgentWith(t, home, 0, mounts...)
}

func startAgentWith(t *testing.T, home string, idleLock time.Duration, mounts ...Mount) *runningAgent {
	t.Helper()
	return startAgentConfig(t, home, func(c *Config) { c.IdleLock, c.Mounts = idleLock, mounts })
}

// startAgentConfig is startAgent with a configuration tune changes.
func startAgentConfig(t *testing.T, home string, tune func(*Config)) *runningAgent {
	t.Helper()
	ln, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Home: home, Listeners: []net.Listener{ln},
		Options: client.Options{ReceiptDelayMin: time.Millisecond, ReceiptDelayMax: 5 * time.Millisecond}}
	if tune != nil {
		tune(&cfg)
	}
	a, err := Open(context.Background(), []byte(testPass), cfg)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	cl := api.Dial(home)
	t.Cleanup(func() {
		cl.CloseIdle()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &runningAgent{a: a, api: cl}
}

// next waits for the next event of type typ on st.
func next(t *testing.T, st *api.Stream, typ string) *api.Event {
	t.Helper()
	for {
		ev, err := st.Next()
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if ev.Type == typ {
			return ev
		}
	}
}

// Two agents over their sockets: a message sent through one reaches the
// other's event stream and history; the receiving agent's one connection
// served every request.
func TestAgentsExchangeMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	r := startRelay(t)
	alice := startAgent(t, r.enroll(t, "alice"))
	bob := startAgent(t, r.enroll(t, "bob"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	st, err := bob.api.Events(ctx, true, 0) // from the agent's start
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	next(t, st, api.EventIdle)
	sent, err := alice.api.Send(ctx, "bob", "hello bob", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := next(t, st, api.EventMessage)
	if got.Message.Text != "hello bob" || got.Message.From != "alice" || string(got.Message.ID) != string(sent.Message.ID) {
		t.Fatalf("bob got %+v", got.Message)
	}
	hist, err := bob.api.History(ctx, "alice", 0)
	if err != nil || len(hist) != 1 || hist[0].Text != "hello bob" {
		t.Fatalf("history: %v %+v", err, hist)
	}
	s, err := bob.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.User != "bob" || !s.Connected || s.Unlocks != 1 || s.Connects != 1 || s.API != api.Version {
		t.Fatalf("status %+v", s)
	}
	// A file: the sender's client follows the upload it named; the
	// receiver downloads it with no front end having watched it arrive.
	path := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(path, []byte("a note for bob"), 0o600); err != nil {
		t.Fatal(err)
	}
	ast, err := alice.api.Events(ctx, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ast.Close()
	fa, err := alice.api.SendFile(ctx, "bob", api.FileRequest{Path: path, Transfer: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	if p := next(t, ast, api.EventProgress).Progress; p.Transfer != "t1" || p.Total == 0 {
		t.Fatalf("progress %+v", p)
	}
	next(t, st, api.EventMessage)
	out := filepath.Join(t.TempDir(), "got.txt")
	dl, err := bob.api.Download(ctx, fa.Message.ID, api.DownloadRequest{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dl.Path); err != nil || string(b) != "a note for bob" {
		t.Fatalf("downloaded %q, %v", b, err)
	}
	// A reconnecting client gets what it missed.
	again, err := bob.api.Events(ctx, true, got.Seq-1)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if ev := next(t, again, api.EventMessage); ev.Seq != got.Seq {
		t.Fatalf("replayed seq %d, want %d", ev.Seq, got.Seq)
	}
}

// Locking drops the keys: requests that use them are refused with kind
// locked until an unlock through the API; a wrong passphrase is counted
// and refused.
func TestAgentLockAndUnlock(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	r := startRelay(t)
	bob := startAgent(t, r.enroll(t, "bob"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := bob.api.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if !bob.a.Client().Locked() {
		t.Fatal("the client is not locked")
	}
	if _, err := bob.api.History(ctx, "alice", 0); !api.IsKind(err, api.KindLocked) {
		t.Fatalf("history while locked: %v, want kind locked", err)
	}
	if err := bob.api.Unlock(ctx, []byte("wrong")); !api.IsKind(err, api.KindWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if err := bob.api.Unlock(ctx, []byte(testPass)); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.api.History(ctx, "alice", 0); err != nil {
		t.Fatalf("history after unlock: %v", err)
	}
	s, err := bob.api.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Unlocks != 2 || s.Locked {
		t.Fatalf("status %+v", s)
	}
}

// Without requests for the idle lock's timeout, the agent locks itself:
// the keys leave its memory and requests are refused until an unlock.
func TestAgentIdleLock(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	r := startRelay(t)
	bob := startAgentWith(t, r.enroll(t, "bob"), 300*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := bob.api.Events(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	next(t, st, api.EventLocked)
	if !bob.a.Client().Locked() {
		t.Fatal("locked event, but the client is not locked")
	}
	if _, err := bob.api.Contacts(ctx); !api.IsKind(err, api.KindLocked) {
		t.Fatalf("contacts while locked: %v", err)
	}
	if err := bob.api.Unlock(ctx, []byte(testPass)); err != nil {
		t.Fatal(err)
	}
	next(t, st, api.EventUnlocked)
}

// The socket is refused in a home folder others can write to (they could
// swap the socket for their own), and a second agent for a home is
// refused.
func TestListenGuards(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o770); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(home); !errors.Is(err, ErrUnsafeHome) {
		t.Fatalf("group-writable home: %v, want ErrUnsafeHome", err)
	}
	if err := os.Chmod(home, 0o702); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(home); !errors.Is(err, ErrUnsafeHome) {
		t.Fatalf("world-writable home: %v, want ErrUnsafeHome", err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(home)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(api.Socket(home))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	var re *RunningError
	if _, err := Listen(home); !errors.As(err, &re) || re.PID != os.Getpid() {
		t.Fatalf("second agent: %v, want RunningError with this pid", err)
	}
	if pid, ok := Running(home); !ok || pid != os.Getpid() {
		t.Fatalf("Running: %d %v", pid, ok)
	}
	ln.Close()
	if _, ok := Running(home); ok {
		t.Fatal("still running after Close")
	}
	if _, err := os.Stat(api.Socket(home)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// The same API mounted on a second listener behind its own
// authentication (as the web app's loopback server does): the wrapper
// decides, the API answers behind it.
func TestAgentMount(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	r := startRelay(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, r.enroll(t, "bob"), Mount{Listener: ln, Wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-Test-Token") != "secret" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
	url := "http://" + ln.Addr().String() + "/v1/status"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-Test-Token", "secret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"user":"bob"`) {
		t.Fatalf("with the token: %d %s", resp.StatusCode, body)
	}
}

// Unknown paths and versions answer the error shape with kind not_found;
// the handler needs no agent state for that.
func TestUnknownEndpoint(t *testing.T) {
	h := NewHandler(&Agent{events: newBroker(4)})
	for _, path := range []string{"/v2/status", "/v1/nothing"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Body)
		if rec.Code != http.StatusNotFound || !strings.Contains(string(body), `"kind":"not_found"`) {
			t.Errorf("%s: %d %s", path, rec.Code, body)
		}
	}
}
