package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"sotto/client/transport"
	"sotto/internal/orgtest"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"sottod": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata"})
}

// relayProc is `sottod serve` running as a real child process.
type relayProc struct {
	cmd *exec.Cmd
	url string
}

func startProc(t *testing.T, dir string) *relayProc {
	t.Helper()
	cmd := exec.Command("sottod", "serve", "-data", dir, "-listen", "127.0.0.1:0", "-log-level", "warn")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &relayProc{cmd: cmd}
	t.Cleanup(func() { p.kill() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, u, ok := strings.Cut(sc.Text(), "relay listening on "); ok {
			p.url = u
			break
		}
	}
	if p.url == "" {
		t.Fatal("sottod serve did not print its URL")
	}
	go io.Copy(io.Discard, out)
	return p
}

// kill sends SIGKILL: no shutdown code runs.
func (p *relayProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

func adminJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	var out, errb strings.Builder
	if code := run(append(args, "--json"), &out, &errb); code != 0 {
		t.Fatalf("sottod %v: exit %d: %s", args, code, errb.String())
	}
	if err := json.Unmarshal([]byte(out.String()), v); err != nil {
		t.Fatal(err)
	}
}

type testDevice struct {
	name string
	id   uint32
	reg  uint32
	key  ed25519.PrivateKey
}

// inviteIn registers an organization in the relay's data directory, as
// its bootstrap would, and an invitation for each name; it returns the
// organization and the seats by name.
func inviteIn(t *testing.T, dir string, names ...string) (*orgtest.Org, map[string]*orgtest.Seat) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	o := orgtest.New("Test Org")
	if err := o.Register(ctx, store); err != nil {
		t.Fatal(err)
	}
	seats := map[string]*orgtest.Seat{}
	now := time.Now()
	for _, n := range names {
		if seats[n], err = o.Invite(ctx, store, n, now.Add(24*time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	return o, seats
}

func enroll(t *testing.T, url string, seat *orgtest.Seat) (*transport.Conn, *testDevice) {
	t.Helper()
	c, err := transport.Dial(context.Background(), url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	pub := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	name, ik := seat.Username, pub(33)
	resp, err := c.Enroll(context.Background(), &wire.EnrollRequest{
		ActivationCode: seat.Code, Username: name, IdentityKey: ik, IdentityCertificate: seat.Certify(ik), RegistrationId: 77,
		Prekeys: &wire.PreKeys{
			SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: pub(33), Signature: pub(64)},
			LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: pub(1569), Signature: pub(64)},
		},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return c, &testDevice{name: name, id: resp.DeviceId, reg: 77, key: key}
}

// TestCrashSafety runs `sottod serve` as a real process, sends messages
// from several goroutines, kills the relay with SIGKILL mid-stream,
// restarts it, and checks that every acknowledged message is delivered,
// exactly once after de-duplication by message id, and that acked
// deliveries stay deleted across another restart.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	_, seats := inviteIn(t, dir, "alice", "bob")
	p := startProc(t, dir)
	alice, _ := enroll(t, p.url, seats["alice"])
	bob, bd := enroll(t, p.url, seats["bob"])
	bob.Close()

	var (
		mu        sync.Mutex
		acked     = map[string]bool{}
		attempted atomic.Int64
		wg        sync.WaitGroup
		killOnce  sync.Once
	)
	const killAfter = 1000
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				attempted.Add(1)
				_, err := alice.SendMessage(context.Background(), &wire.SendMessageRequest{Recipient: "bob", MessageId: []byte(id),
					Messages: []*wire.OutgoingMessage{{DeviceId: bd.id, RegistrationId: bd.reg, Type: 1, Content: []byte(id)}}})
				if err != nil {
					return
				}
				mu.Lock()
				acked[id] = true
				n := len(acked)
				mu.Unlock()
				if n >= killAfter {
					killOnce.Do(p.kill)
				}
			}
		}()
	}
	wg.Wait()
	alice.Close()
	t.Logf("acknowledged %d of %d attempted sends before SIGKILL", len(acked), attempted.Load())

	p2 := startProc(t, dir)
	b, err := transport.Dial(context.Background(), p2.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(context.Background(), "bob", bd.id, bd.key); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	deadline := time.After(60 * time.Second)
	drained := false
	for !drained {
		select {
		case e, ok := <-b.Envelopes():
			if !ok {
				t.Fatalf("connection ended: %v", b.Err())
			}
			got[string(e.MessageId)]++
			if string(e.Content) != string(e.MessageId) {
				t.Fatalf("content of %s corrupted", e.MessageId)
			}
			if err := b.Ack(context.Background(), e.Id); err != nil {
				t.Fatal(err)
			}
		case <-b.Drained():
			// Anything still in the channel arrived before QueueEmpty.
			for {
				select {
				case e := <-b.Envelopes():
					got[string(e.MessageId)]++
					b.Ack(context.Background(), e.Id)
					continue
				default:
				}
				break
			}
			drained = true
		case <-deadline:
			t.Fatal("drain did not finish")
		}
	}
	b.Close()
	for id := range acked {
		if got[id] == 0 {
			t.Fatalf("acknowledged message %s lost in the crash", id)
		}
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("message %s delivered %d times on one connection", id, n)
		}
	}
	t.Logf("delivered %d distinct messages (%d acknowledged + %d stored but unacknowledged at the crash)", len(got), len(acked), len(got)-len(acked))

	// Acks were durable: after a clean restart nothing comes back.
	p2.cmd.Process.Signal(syscall.SIGTERM)
	if err := p2.cmd.Wait(); err != nil {
		t.Fatalf("graceful shutdown: %v", err)
	}
	p3 := startProc(t, dir)
	b3, err := transport.Dial(context.Background(), p3.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b3.Close()
	if _, err := b3.Authenticate(context.Background(), "bob", bd.id, bd.key); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-b3.Envelopes():
		t.Fatalf("acked message %s delivered again", e.MessageId)
	case <-b3.Drained():
	case <-time.After(30 * time.Second):
		t.Fatal("no QueueEmpty")
	}
}

// TestAdminRevokesLiveDevice runs the admin command (a second opener of
// the database) while `sottod serve` runs: the relay closes the revoked
// device's connection and refuses it afterwards.
func TestAdminRevokesLiveDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	_, seats := inviteIn(t, dir, "alice")
	p := startProc(t, dir)
	alice, ad := enroll(t, p.url, seats["alice"])
	var devs []struct {
		Username string
		Device   uint32
		Revoked  bool
	}
	adminJSON(t, &devs, "admin", "devices", "list", "-data", dir)
	if len(devs) != 1 || devs[0].Username != "alice" || devs[0].Device != 1 || devs[0].Revoked {
		t.Fatalf("devices: %+v", devs)
	}
	var res map[string]any
	adminJSON(t, &res, "admin", "devices", "revoke", "-data", dir, "alice", "1")
	select {
	case <-alice.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("revoked device still connected")
	}
	c, err := transport.Dial(context.Background(), p.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Authenticate(context.Background(), "alice", ad.id, ad.key)
	if transport.Code(err) != wire.ErrorCode_REVOKED {
		t.Fatalf("authenticate after revoke: %v", err)
	}
	var usage map[string]int
	adminJSON(t, &usage, "admin", "usage", "-data", dir)
	if usage["accounts"] != 1 || usage["active_devices"] != 0 || usage["seats_used"] != 1 {
		t.Fatalf("usage: %v", usage)
	}
}
