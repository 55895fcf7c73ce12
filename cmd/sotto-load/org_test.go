package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sotto/internal/orgtest"
	"sotto/relay"
	"sotto/relay/pgstore"
	"sotto/relay/pgstore/pgtest"
	"sotto/relay/sqlitestore"
)

func idleRun(t *testing.T, url string, extra ...string) (int, string) {
	t.Helper()
	var out strings.Builder
	args := append([]string{"idle", "-relay", url, "-devices", "2", "-hold", "10ms"}, extra...)
	rc := run(context.Background(), args, &out, &out)
	return rc, out.String()
}

func relayOrgKey(t *testing.T, dir string) []byte {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, err := st.OrgKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestOrganization: on a relay without an organization sotto-load creates
// one through the relay's bootstrap, with a key it keeps (mode 0600); later
// runs invite into that organization; a relay whose organization's key it
// does not hold is refused with both fingerprints.
func TestOrganization(t *testing.T) {
	url, dir := startRelay(t)
	rc, out := idleRun(t, url, "-data", dir, "-prefix", "first")
	if rc != 0 || !strings.Contains(out, "created the relay's organization") || !strings.Contains(out, "registered 2 invitations") {
		t.Fatalf("first run: exit %d:\n%s", rc, out)
	}
	path := filepath.Join(dir, orgKeyFileName)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("org key file: %v %v", fi, err)
	}
	key, err := loadOrgKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(relayOrgKey(t, dir), key.Public().(ed25519.PublicKey)) {
		t.Fatal("the relay's org key is not the one sotto-load kept")
	}
	rc, out = idleRun(t, url, "-data", dir, "-prefix", "second")
	if rc != 0 || strings.Contains(out, "created the relay's organization") {
		t.Fatalf("second run: exit %d:\n%s", rc, out)
	}

	// Another org key file: the relay's organization is not its own.
	other := filepath.Join(t.TempDir(), "other.key")
	rc, out = idleRun(t, url, "-data", dir, "-prefix", "third", "-org-key", other)
	if rc != 1 || !strings.Contains(out, "the relay's organization is not the one of sotto-load's org key") ||
		!strings.Contains(out, relay.OrgFingerprint(key.Public().(ed25519.PublicKey))) {
		t.Fatalf("foreign organization: exit %d:\n%s", rc, out)
	}

	// A relay whose organization sotto-load did not create.
	url2, dir2 := startRelay(t)
	st, err := sqlitestore.Open(context.Background(), dir2, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := orgtest.New("Someone else")
	if err := foreign.Register(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	st.Close()
	rc, out = idleRun(t, url2, "-data", dir2, "-prefix", "fourth")
	if rc != 1 || !strings.Contains(out, relay.OrgFingerprint(foreign.Public())) {
		t.Fatalf("relay of another organization: exit %d:\n%s", rc, out)
	}
	if !bytes.Equal(relayOrgKey(t, dir2), foreign.Public()) {
		t.Fatal("sotto-load changed the relay's org key")
	}

	// A corrupt key file is refused, not replaced.
	if err := os.WriteFile(other, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadOrgKey(other); err == nil {
		t.Fatal("a corrupt org key file was accepted")
	}
}

// TestOrganizationPostgres: with -store postgres sotto-load opens the
// relay's PostgreSQL store, creates the organization with the key in
// -org-key, and its devices enroll and log in.
func TestOrganizationPostgres(t *testing.T) {
	pgURL := pgtest.URL(t)
	schema := pgtest.Schema(t, pgURL)
	ctx := context.Background()
	store, err := pgstore.Open(ctx, pgURL, pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.EnrollRate = relay.Rate{PerSecond: 1000, Burst: 1000}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close(); store.Close() })
	keyFile := filepath.Join(t.TempDir(), "org.key")
	rc, out := idleRun(t, "ws"+strings.TrimPrefix(hs.URL, "http"), "-store", "postgres", "-postgres-url", pgURL,
		"-postgres-schema", schema, "-org-key", keyFile, "-prefix", "pg")
	if rc != 0 || !strings.Contains(out, "created the relay's organization") || !strings.Contains(out, "relay with 2 open connections") {
		t.Fatalf("exit %d:\n%s", rc, out)
	}
	key, err := loadOrgKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if k, err := store.OrgKey(ctx); err != nil || !bytes.Equal(k, key.Public().(ed25519.PublicKey)) {
		t.Fatalf("the relay's org key: %x %v", k, err)
	}
}
