// Package publish is the project's side of the release log: it writes a
// release (its files, manifest and signature) into a release directory,
// appends the manifest to the log, signs the log's new head with the
// release key, and has the organization's witness co-sign it. The
// directory is static files that any web server, or the relay's /releases
// mirror, can serve; package release says what a device checks.
//
// Layout:
//
//	log/leaves                     the manifest hashes, in log order
//	log/checkpoint                 the signed head and its cosignatures
//	VERSION/GOOS_GOARCH/manifest   the manifest
//	VERSION/GOOS_GOARCH/manifest.sig
//	VERSION/GOOS_GOARCH/FILE...    the release's files
package publish

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sotto/release"
	"sotto/transparency"
)

// Release is one release for one platform.
type Release struct {
	Version    string
	MinVersion string
	Commit     string
	Platform   string            // GOOS/GOARCH
	Files      map[string]string // name in the release → path of the file to publish
}

// Dir returns the folder of a release, relative to the release directory.
func Dir(version, platform string) string {
	return version + "/" + strings.ReplaceAll(platform, "/", "_")
}

// Publish adds r to the release directory dir, signed with key, and appends
// its manifest to the log under a new head signed with key (not yet
// witnessed: call Witness). It refuses a release already published. It
// returns the encoded manifest.
func Publish(dir string, key ed25519.PrivateKey, r Release, now time.Time) ([]byte, error) {
	m := &release.Manifest{Version: r.Version, MinVersion: r.MinVersion, Commit: r.Commit, Platform: r.Platform}
	for name, path := range r.Files {
		f, err := hashFile(path)
		if err != nil {
			return nil, err
		}
		f.Name = name
		m.Files = append(m.Files, f)
	}
	enc, err := m.Encode()
	if err != nil {
		return nil, err
	}
	rel := filepath.Join(dir, filepath.FromSlash(Dir(r.Version, r.Platform)))
	if _, err := os.Stat(filepath.Join(rel, "manifest")); err == nil {
		return nil, fmt.Errorf("publish: %s for %s is published already", r.Version, r.Platform)
	}
	if err := os.MkdirAll(rel, 0o755); err != nil {
		return nil, err
	}
	for name, path := range r.Files {
		if err := copyFile(path, filepath.Join(rel, name)); err != nil {
			return nil, err
		}
	}
	if err := writeFile(filepath.Join(rel, "manifest.sig"), release.Sign(key, enc)); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(rel, "manifest"), enc); err != nil {
		return nil, err
	}
	leaves, err := readLeaves(dir)
	if err != nil {
		return nil, err
	}
	leaves = append(leaves, release.Hash(enc))
	root, err := release.Root(leaves)
	if err != nil {
		return nil, err
	}
	head := transparency.SignHead(key, uint64(len(leaves)), root, now.UnixMilli())
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o755); err != nil {
		return nil, err
	}
	// The leaves first: a reader that sees the new head also sees its leaves.
	if err := writeFile(filepath.Join(dir, "log", "leaves"), release.EncodeLeaves(leaves)); err != nil {
		return nil, err
	}
	cp := &release.Checkpoint{Head: head}
	if err := writeFile(filepath.Join(dir, "log", "checkpoint"), cp.Encode()); err != nil {
		return nil, err
	}
	return enc, nil
}

// Cosigner is a witness: witness.Client over HTTP, or an in-process one.
type Cosigner interface {
	AddCheckpoint(ctx context.Context, oldSize uint64, proof []transparency.Hash, head []byte) ([]byte, error)
}

// sizeError is what a witness answers when it last co-signed another size
// (witness.ConflictError).
type sizeError interface{ WitnessSize() uint64 }

// Witness has the witness co-sign the log's head and adds its cosignature
// to log/checkpoint.
func Witness(ctx context.Context, dir string, w Cosigner) error {
	b, err := os.ReadFile(filepath.Join(dir, "log", "checkpoint"))
	if err != nil {
		return err
	}
	cp, err := release.ParseCheckpoint(b)
	if err != nil {
		return err
	}
	leaves, err := readLeaves(dir)
	if err != nil {
		return err
	}
	var tree transparency.MemoryTree
	for _, h := range leaves[:cp.Head.Size] {
		if err := tree.AppendLeaf(release.Leaf(h)); err != nil {
			return err
		}
	}
	old := uint64(0)
	for attempt := 0; ; attempt++ {
		proof, err := transparency.ConsistencyProof(&tree, old, cp.Head.Size)
		if err != nil {
			return err
		}
		cosig, err := w.AddCheckpoint(ctx, old, proof, cp.Head.Encode())
		var se sizeError
		if errors.As(err, &se) && attempt == 0 {
			old = se.WitnessSize()
			continue
		}
		if err != nil {
			return fmt.Errorf("publish: witness: %w", err)
		}
		cp.Cosignatures = append(cp.Cosignatures, cosig)
		return writeFile(filepath.Join(dir, "log", "checkpoint"), cp.Encode())
	}
}

func readLeaves(dir string) ([][sha256.Size]byte, error) {
	b, err := os.ReadFile(filepath.Join(dir, "log", "leaves"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return release.ParseLeaves(b)
}

func hashFile(path string) (release.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return release.File{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return release.File{}, err
	}
	var out release.File
	copy(out.SHA256[:], h.Sum(nil))
	out.Size = uint64(n)
	return out, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFile(dst, b)
}

// writeFile replaces path atomically (a temporary file, synced, renamed).
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".publish-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// LoadKey reads a release key file: the key's 32-byte seed in hex, one
// line (what NewKey writes).
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("publish: %s is not a release key (64 hex digits)", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// NewKey makes a release key and writes it to path (0600, never over an
// existing file). It returns the public key, which release builds pin.
func NewKey(path string) (ed25519.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(f, "%x\n", priv.Seed()); err != nil {
		f.Close()
		return nil, err
	}
	return pub, f.Close()
}
