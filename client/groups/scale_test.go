package groups

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/internal/orgtest"
	"sotto/mls"
	"sotto/orgcert"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/signal/keys"
	"sotto/wire"
)

// scaleRelay is a real relay (SQLite files, WebSockets on 127.0.0.1)
// whose organization the test holds, for groups of many devices: most
// of them are simulated (an account, a device and an org-certified
// KeyPackage written to the relay's store), a few are real Managers.
type scaleRelay struct {
	url   string
	store *sqlitestore.Store
	org   *orgtest.Org
}

func startScaleRelay(t testing.TB) *scaleRelay {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, memDir(t), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &scaleRelay{store: st, org: orgtest.New("Scale Org")}
	if err := r.org.Register(ctx, st); err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = st, st
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.DeviceRate = relay.Rate{PerSecond: 1e6, Burst: 1e6}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		hs.Close()
		st.Close()
	})
	r.url = "ws://" + strings.TrimPrefix(hs.URL, "http://")
	return r
}

// memDir is a temporary directory in memory (tmpfs) when the machine has
// one: this test is about sizes and the protocol, not the disk, and a
// thousand enrollments each waiting for an fsync would make it minutes.
func memDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "sotto-groups-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// scaleDevice is an enrolled device: its address, its device key and
// what a Manager needs to act as it.
type scaleDevice struct {
	addr relay.DeviceAddr
	key  ed25519.PrivateKey
	self Self
}

// enroll writes accounts of one device each for names into the relay's
// store, as enrollment with an invitation would (parallel, so that the
// store's writer commits them in batches).
func (r *scaleRelay) enroll(t testing.TB, names []string) []*scaleDevice {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	seats, err := r.org.InviteAll(ctx, r.store, names, now.Add(time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*scaleDevice, len(names))
	var eg errgroup.Group
	eg.SetLimit(16)
	for i, seat := range seats {
		eg.Go(func() error {
			ik, err := keys.GenerateIdentityKeyPair(rand.Reader)
			if err != nil {
				return err
			}
			token, err := base64.RawURLEncoding.DecodeString(seat.Code)
			if err != nil {
				return err
			}
			pub, key, _ := ed25519.GenerateKey(rand.Reader)
			var id relay.AccountID
			rand.Read(id[:])
			pk := func(n int) *relay.SignedPreKey {
				return &relay.SignedPreKey{ID: 1, PublicKey: make([]byte, n), Signature: make([]byte, 64)}
			}
			_, dev, err := r.store.Enroll(ctx, relay.NewAccount{CodeHash: orgcert.HashSeatToken(token), ID: id, Username: seat.Username,
				IdentityKey: ik.PublicKey().Serialize(), Device: relay.Device{DeviceKey: pub, RegistrationID: 1},
				PreKeys: relay.PreKeys{SignedPreKey: pk(33), LastResortKyber: pk(1569)}}, now)
			if err != nil {
				return fmt.Errorf("enroll %s: %w", seat.Username, err)
			}
			out[i] = &scaleDevice{addr: dev.Addr, key: key, self: Self{Username: seat.Username, DeviceID: dev.Addr.Device, Identity: ik,
				Certificate: seat.Certify(ik.PublicKey().Serialize()), OrgKey: r.org.Public()}}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	return out
}

// simulate gives each device one org-certified KeyPackage on the relay,
// whose private keys nobody keeps: a member that never reads.
func (r *scaleRelay) simulate(t testing.TB, devs []*scaleDevice) {
	t.Helper()
	ctx := context.Background()
	var eg errgroup.Group
	eg.SetLimit(16)
	for _, d := range devs {
		eg.Go(func() error {
			seed, err := mls.GenerateSignatureKey(Suite)
			if err != nil {
				return err
			}
			id, err := newIdentity(&d.self, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
			if err != nil {
				return err
			}
			kp, err := NewKeyPackage(id, seed)
			if err != nil {
				return err
			}
			return r.store.StoreKeyPackages(ctx, d.addr, [][]byte{kp}, nil)
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
}

// manager connects d and returns its Manager on a store of its own,
// with its KeyPackages stocked on the relay.
func (r *scaleRelay) manager(t testing.TB, d *scaleDevice) *Manager {
	t.Helper()
	ctx := context.Background()
	conn, err := transport.Dial(ctx, r.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Authenticate(ctx, d.self.Username, d.self.DeviceID, d.key); err != nil {
		t.Fatal(err)
	}
	db, err := store.Create(ctx, filepath.Join(t.TempDir(), d.self.Username), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	m := New(func() (Relay, error) { return conn, nil }, db, d.self, Options{})
	if _, err := m.RefillKeyPackages(ctx); err != nil {
		t.Fatal(err)
	}
	return m
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

// A group of 1,000 member devices (420 under the race detector) through a real relay: the creating
// commit (1,000 KeyPackages) and its Welcome and GroupInfo (each with the
// ratchet tree) are larger than a frame, so they go up in parts and the
// members read the Welcome in parts; real members join from it, every
// leaf's credential checked, and exchange messages with the creator.
func TestGroupThousandMembers(t *testing.T) {
	const n = thousandMembers
	ctx := context.Background()
	r := startScaleRelay(t)
	t0 := time.Now()
	devs := r.enroll(t, append([]string{"creator", "reader-a", "reader-b"}, names("m", n-3)...))
	t.Logf("enrolled in %v", time.Since(t0))
	r.simulate(t, devs[3:])
	t.Logf("simulated in %v", time.Since(t0))
	creator, a, b := r.manager(t, devs[0]), r.manager(t, devs[1]), r.manager(t, devs[2])
	t.Logf("managers in %v", time.Since(t0))

	start := time.Now()
	var users []string
	for _, d := range devs[1:] {
		users = append(users, d.self.Username)
	}
	id, err := creator.Create(ctx, "everyone", users...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("created a group of %d devices in %v", n, time.Since(start).Round(time.Millisecond))

	// The Welcome was too large for a frame: a simulated member is told
	// its size, not its bytes.
	msgs, err := r.store.FetchGroups(ctx, devs[n-1].addr, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Kind != relay.GroupKindWelcome || msgs[0].Content != nil || msgs[0].Size <= wire.MaxFrameSize {
		t.Fatalf("a simulated member's delivery: %v %+v", err, msgs)
	}
	t.Logf("the Welcome is %d bytes", msgs[0].Size)

	var wg sync.WaitGroup
	for _, m := range []*Manager{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Sync(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	t.Logf("joined in %v", time.Since(t0))
	if t.Failed() {
		t.FailNow()
	}
	for _, m := range []*Manager{creator, a, b} {
		info, err := m.Info(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", m.self.Username, err)
		}
		if len(info.Members) != n || info.Epoch != 1 {
			t.Fatalf("%s: %d members at epoch %d", m.self.Username, len(info.Members), info.Epoch)
		}
	}
	if _, err := creator.Send(ctx, id, "hello, thousand"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Send(ctx, id, "hello from a"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		m    *Manager
		want []string
	}{{b, []string{"creator: hello, thousand", "reader-a: hello from a"}}, {creator, []string{"reader-a: hello from a"}}} {
		got, err := c.m.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, msg := range got {
			texts = append(texts, msg.From+": "+msg.Text)
		}
		if fmt.Sprint(texts) != fmt.Sprint(c.want) {
			t.Fatalf("%s received %q, want %q", c.m.self.Username, texts, c.want)
		}
	}
}
