package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client/groups"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/internal/orgtest"
	"sotto/signal/keys"
	"sotto/wire"
)

// groupDevice is a real group client (client/groups on an encrypted
// store) of a device enrolled with a real identity key, whose connection
// is replaced when the relay restarts.
type groupDevice struct {
	name string
	id   uint32
	key  ed25519.PrivateKey
	m    *groups.Manager

	mu   sync.Mutex
	conn groups.Relay
}

func (d *groupDevice) relay() (groups.Relay, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn, nil
}

// connect logs d in on a new connection to url.
func (d *groupDevice) connect(t *testing.T, url string) *transport.Conn {
	t.Helper()
	c, err := transport.Dial(context.Background(), url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Authenticate(context.Background(), d.name, d.id, d.key); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.conn = c
	d.mu.Unlock()
	return c
}

// enrollGroupDevice enrolls seat's user with a real identity key, so
// that its MLS credential is org-certified, and starts its group client.
func enrollGroupDevice(t *testing.T, url string, o *orgtest.Org, seat *orgtest.Seat) *groupDevice {
	t.Helper()
	ctx := context.Background()
	c, err := transport.Dial(ctx, url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ik, err := keys.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	_, key, _ := ed25519.GenerateKey(nil)
	ikPub := ik.PublicKey().Serialize()
	cert := seat.Certify(ikPub)
	resp, err := c.Enroll(ctx, &wire.EnrollRequest{
		ActivationCode: seat.Code, Username: seat.Username, IdentityKey: ikPub, IdentityCertificate: cert, RegistrationId: 7,
		Prekeys: &wire.PreKeys{
			SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: pub(33), Signature: pub(64)},
			LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: pub(1569), Signature: pub(64)},
		},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	d := &groupDevice{name: seat.Username, id: resp.DeviceId, key: key, conn: c}
	db, err := store.Create(ctx, filepath.Join(t.TempDir(), d.name), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	d.m = groups.New(d.relay, db, groups.Self{Username: d.name, DeviceID: d.id, Identity: ik, Certificate: cert, OrgKey: o.Public()}, groups.Options{})
	if _, err := d.m.RefillKeyPackages(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// texts returns d's kept messages of group id (received and sent) as
// "from: text", failing on a sequence number kept twice.
func (d *groupDevice) texts(t *testing.T, id []byte) []string {
	t.Helper()
	msgs, err := d.m.Messages(context.Background(), id, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	var out []string
	for _, m := range msgs {
		if seen[m.Seq] {
			t.Fatalf("%s keeps group message %d twice", d.name, m.Seq)
		}
		seen[m.Seq] = true
		out = append(out, m.From+": "+m.Text)
	}
	return out
}

func (d *groupDevice) sync(t *testing.T) {
	t.Helper()
	if _, err := d.m.Sync(context.Background()); err != nil {
		t.Fatalf("%s: sync: %v", d.name, err)
	}
}

// killingRelay kills the relay process while a commit is on its way:
// the request is written, and the process gets SIGKILL before (or while)
// the relay handles it.
type killingRelay struct {
	groups.Relay
	kill func()
}

func (k *killingRelay) GroupCommit(ctx context.Context, req *wire.GroupCommitRequest) (*wire.GroupCommitResponse, error) {
	done := make(chan struct{})
	var resp *wire.GroupCommitResponse
	var err error
	go func() {
		defer close(done)
		resp, err = k.Relay.GroupCommit(ctx, req)
	}()
	k.kill()
	<-done
	if err == nil {
		return nil, fmt.Errorf("the relay answered (%v) but the answer is lost with it", resp.GetAccepted())
	}
	return nil, err
}

// TestGroupCrashSafety runs `sottod serve` as a real process and kills it
// with SIGKILL twice: while two members send to a group as fast as they
// can, and while a commit is on its way. After each restart, every
// message a sender saw acknowledged reaches every other member exactly
// once, nothing is kept twice, and the commit caught in the crash is
// settled (resent and applied) so that every member ends at the same
// epoch and can read what follows.
func TestGroupCrashSafety(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	o, seats := inviteIn(t, dir, "alice", "bob", "carol")
	p := startProc(t, dir)
	alice := enrollGroupDevice(t, p.url, o, seats["alice"])
	bob := enrollGroupDevice(t, p.url, o, seats["bob"])
	carol := enrollGroupDevice(t, p.url, o, seats["carol"])
	all := []*groupDevice{alice, bob, carol}
	id, err := alice.m.Create(ctx, "crash", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	bob.sync(t)
	carol.sync(t)

	// 1. SIGKILL during group sends.
	var (
		mu       sync.Mutex
		acked    = map[*groupDevice][]string{}
		total    atomic.Int64
		killOnce sync.Once
		wg       sync.WaitGroup
	)
	const killAfter = 20
	// carol watches meanwhile: she takes in what the relay's pushes
	// carry and acknowledges it in batches, so the SIGKILL finds some of
	// it taken in and not yet acknowledged.
	watched := make(chan error, 1)
	go func() { watched <- carol.m.Watch(ctx, nil) }()
	for _, d := range []*groupDevice{alice, bob} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				text := fmt.Sprintf("%s-%d", d.name, i)
				if _, err := d.m.Send(ctx, id, text); err != nil {
					return
				}
				mu.Lock()
				acked[d] = append(acked[d], d.name+": "+text)
				mu.Unlock()
				if total.Add(1) >= killAfter {
					killOnce.Do(p.kill)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d group sends acknowledged before SIGKILL", total.Load())
	select {
	case err := <-watched:
		t.Logf("carol's watch ended with the relay: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("carol's watch outlived the relay")
	}

	p = startProc(t, dir)
	for _, d := range all {
		d.connect(t, p.url)
		d.sync(t)
	}
	for _, d := range all {
		got := d.texts(t, id)
		for sender, sent := range acked {
			if sender == d {
				continue
			}
			for _, s := range sent {
				if !slices.Contains(got, s) {
					t.Fatalf("%s lost %q, acknowledged before the crash", d.name, s)
				}
			}
		}
		if len(got) != len(slices.Compact(slices.Clone(got))) {
			t.Fatalf("%s shows a message twice: %q", d.name, got)
		}
	}

	// 2. SIGKILL while carol's commit is on its way.
	epoch := func(d *groupDevice) uint64 {
		info, err := d.m.Info(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		return info.Epoch
	}
	before := epoch(carol)
	c := carol.conn
	carol.mu.Lock()
	carol.conn = &killingRelay{Relay: c, kill: p.kill}
	carol.mu.Unlock()
	if err := carol.m.Update(ctx, id); err == nil {
		t.Fatal("a commit answered by a killed relay")
	}
	p = startProc(t, dir)
	for _, d := range all {
		d.connect(t, p.url)
	}
	carol.sync(t) // settles the commit caught in the crash
	alice.sync(t)
	bob.sync(t)
	for _, d := range all {
		if e := epoch(d); e != before+1 {
			t.Fatalf("%s at epoch %d after the crash, want %d", d.name, e, before+1)
		}
	}
	if _, err := alice.m.Send(ctx, id, "after both crashes"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*groupDevice{bob, carol} {
		d.sync(t)
		got := d.texts(t, id)
		if got[len(got)-1] != "alice: after both crashes" {
			t.Fatalf("%s's last message: %q", d.name, got[len(got)-1])
		}
	}
}
