package update

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"sotto/release"
)

// found is a checked release whose one file, "sotto", is content.
func found(t *testing.T, dir, version string, content []byte) *Found {
	t.Helper()
	m := &release.Manifest{Version: version, MinVersion: "v0.1.0", Commit: "abcdef0", Platform: "linux/amd64",
		Files: []release.File{{Name: "sotto", SHA256: sha256.Sum256(content), Size: uint64(len(content))}}}
	if _, err := m.Encode(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "rel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rel", "sotto"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	return &Found{Manifest: m, dir: "rel"}
}

func script(out string) []byte { return []byte("#!/bin/sh\necho '" + out + "'\n") }

func TestApplyReplacesOnlyAfterTheNewBinaryStarted(t *testing.T) {
	ctx := context.Background()
	mirror, bin := t.TempDir(), t.TempDir()
	target := filepath.Join(bin, "sotto")
	old := script("sotto v1.0.0 (commit 1111111, go)")
	if err := os.WriteFile(target, old, 0o755); err != nil {
		t.Fatal(err)
	}
	unchanged := func() {
		t.Helper()
		b, err := os.ReadFile(target)
		if err != nil || string(b) != string(old) {
			t.Fatalf("the binary changed: %q %v", b, err)
		}
		if ents, _ := os.ReadDir(bin); len(ents) != 1 {
			t.Fatalf("left files behind: %v", ents)
		}
	}
	// A build that starts but says another version: not installed.
	f := found(t, mirror, "v1.1.0", script("sotto v6.6.6 (commit abcdef0, go)"))
	if err := Apply(ctx, NewSource(mirror, nil), f, "sotto", target); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Apply = %v, want ErrNotStarted", err)
	}
	unchanged()
	// Bytes that are not the manifest's: not installed.
	f = found(t, mirror, "v1.1.0", script("sotto v1.1.0 (commit abcdef0, go)"))
	if err := os.WriteFile(filepath.Join(mirror, "rel", "sotto"), script("sotto v1.1.0 (commit abcdef0, go) "), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, NewSource(mirror, nil), f, "sotto", target); !errors.Is(err, release.ErrFileMismatch) {
		t.Fatalf("Apply = %v, want ErrFileMismatch", err)
	}
	unchanged()
	// The right one: installed, the old one kept beside it.
	f = found(t, mirror, "v1.1.0", script("sotto v1.1.0 (commit abcdef0, go)"))
	if err := Apply(ctx, NewSource(mirror, nil), f, "sotto", target); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != string(script("sotto v1.1.0 (commit abcdef0, go)")) {
		t.Fatalf("installed %q", b)
	}
	if b, _ := os.ReadFile(target + ".old"); string(b) != string(old) {
		t.Fatalf("kept %q", b)
	}
}
