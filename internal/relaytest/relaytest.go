// Package relaytest runs a real relay inside a test (SQLite, WebSockets on
// 127.0.0.1, optionally attachments and a TURN server) with its
// organization, and enrolls devices in new home folders: the set-up the
// agent's and the web app's end-to-end tests share. Nothing here is a
// stand-in: the relay, its store and the enrollment are the real ones.
package relaytest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client"
	"sotto/client/org"
	"sotto/client/store"
	"sotto/internal/orgtest"
	"sotto/relay"
	"sotto/relay/blobstore"
	"sotto/relay/sqlitestore"
)

// Options chooses what the relay serves besides messages.
type Options struct {
	Blobs bool // attachments (relay.BlobConfig in a temporary folder)
	TURN  bool // a TURN server on 127.0.0.1, and credentials for it
}

// Relay is a running relay and its organization; it stops when the test
// ends.
type Relay struct {
	URL    string // ws://127.0.0.1:PORT
	Store  *sqlitestore.Store
	Org    *orgtest.Org
	LogPub ed25519.PublicKey // the key transparency log's key
	// TURNAllocations counts the TURN server's allocations (nil without
	// TURN).
	TURNAllocations *atomic.Int64
}

// Start runs a relay until the test ends.
func Start(t testing.TB, o Options) *Relay {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() }) // runs last: cleanups run in reverse
	cfg := relay.DefaultConfig()
	_, cfg.LogKey, _ = ed25519.GenerateKey(rand.Reader)
	cfg.Directory, cfg.Mailbox = st, st
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.EnrollRate = relay.Rate{PerSecond: 100, Burst: 100}
	r := &Relay{Store: st, LogPub: cfg.LogKey.Public().(ed25519.PublicKey)}
	if o.Blobs {
		dir := t.TempDir()
		idx, err := blobstore.Open(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { idx.Close() })
		cfg.Blobs = relay.BlobConfig{Index: idx, Dir: dir}
	}
	if o.TURN {
		secret := make([]byte, 32)
		rand.Read(secret)
		r.TURNAllocations = new(atomic.Int64)
		ts, err := relay.StartTURN(ctx, relay.TURNServerConfig{Secret: secret, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
			OnAllocate: func() { r.TURNAllocations.Add(1) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ts.Close() })
		cfg.TURN = &relay.TURNCredentials{Secret: secret, URLs: ts.URLs(""), TTL: 10 * time.Minute}
	}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Run(rctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		hs.Close()
	})
	r.Org = orgtest.New("Test Org")
	if err := r.Org.Register(ctx, st); err != nil {
		t.Fatal(err)
	}
	r.URL = "ws://" + strings.TrimPrefix(hs.URL, "http://")
	return r
}

// Enroll enrolls user, with passphrase, in a new home folder (a fast KDF,
// no passphrase policy) and returns the folder.
func (r *Relay) Enroll(t testing.TB, user string, passphrase []byte) string {
	t.Helper()
	ctx := context.Background()
	inv, err := r.Org.Invitation(ctx, r.Store, org.MintParams{Username: user, Expires: time.Now().Add(time.Hour),
		RelayURL: r.URL, LogKey: r.LogPub, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), user)
	c, err := client.Enroll(ctx, client.EnrollParams{Dir: home, Passphrase: passphrase, Invitation: inv},
		&client.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return home
}
