package publish

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sotto/release"
	"sotto/witness"
)

// TestPublishAndWitnessOverHTTP publishes two releases into a directory and
// has a real witness (over HTTP) co-sign each head; a device's policy then
// accepts the second release from exactly these files.
func TestPublishAndWitnessOverHTTP(t *testing.T) {
	ctx := context.Background()
	dir, tmp := t.TempDir(), t.TempDir()
	keyFile := filepath.Join(tmp, "release.key")
	pub, err := NewKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKey(keyFile); err == nil {
		t.Fatal("NewKey overwrote a key file")
	}
	key, err := LoadKey(keyFile)
	if err != nil || !key.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("LoadKey: %v", err)
	}
	wdir := t.TempDir()
	wpub, err := witness.InitKey(wdir)
	if err != nil {
		t.Fatal(err)
	}
	wkey, err := witness.LoadKey(wdir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Dir: wdir, Key: wkey, LogKey: pub, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(w.Handler())
	defer hs.Close()
	wc := &witness.Client{URL: hs.URL}

	bin := filepath.Join(tmp, "sotto")
	var last []byte
	for _, v := range []string{"v1.0.0", "v1.1.0"} {
		if err := os.WriteFile(bin, []byte("binary "+v), 0o755); err != nil {
			t.Fatal(err)
		}
		last, err = Publish(dir, key, Release{Version: v, MinVersion: "v0.1.0", Commit: "abcdef0", Platform: "linux/amd64",
			Files: map[string]string{"sotto": bin}}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		// The second time the witness answers with the size it co-signed
		// (409), and Witness retries from there with a consistency proof.
		if err := Witness(ctx, dir, wc); err != nil {
			t.Fatalf("witness %s: %v", v, err)
		}
	}
	if _, err := Publish(dir, key, Release{Version: "v1.1.0", MinVersion: "v0.1.0", Commit: "abcdef0", Platform: "linux/amd64",
		Files: map[string]string{"sotto": bin}}, time.Now()); err == nil {
		t.Fatal("published v1.1.0 twice")
	}

	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d := Dir("v1.1.0", "linux/amd64")
	c := release.Candidate{Manifest: read(d + "/manifest"), Signature: read(d + "/manifest.sig"), Leaves: read("log/leaves"), Checkpoint: read("log/checkpoint")}
	p := &release.Policy{ReleaseKey: pub, WitnessKey: wpub, Running: "v1.0.0", Platform: "linux/amd64", Approved: [][32]byte{release.Hash(last)}}
	m, pos, err := p.Check(c)
	if err != nil {
		t.Fatal(err)
	}
	if pos.Index != 1 || pos.TreeSize != 2 {
		t.Fatalf("position %+v", pos)
	}
	if err := m.CheckFile("sotto", read(d+"/sotto")); err != nil {
		t.Fatal(err)
	}
}
