package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"sotto/relay"
	"sotto/transparency"
)

// logKeyFile holds the seed of the key transparency log key, hex, in the
// data directory. Relays sharing one PostgreSQL database must share it.
const logKeyFile = "transparency-log.key"

// loadLogKey reads the log key from dataDir, creating it on first start.
func loadLogKey(dataDir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dataDir, logKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createLogKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("sottod: log key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("sottod: log key %s: not a hex Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

func createLogKey(path string) (ed25519.PrivateKey, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("sottod: log key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sottod: log key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // another process created it meanwhile
		return loadLogKey(filepath.Dir(path))
	}
	if err != nil {
		return nil, fmt.Errorf("sottod: log key: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(seed) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("sottod: log key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// keylogShow prints the key transparency log's public key (for users to
// compare with `sotto keylog`) and the log's size and root. It never
// creates a key.
func (a *adminCmd) keylogShow(ctx context.Context) error {
	b, err := os.ReadFile(filepath.Join(*a.data, logKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return a.emit(map[string]string{}, func(w io.Writer) { fmt.Fprintln(w, "no key transparency log key yet (sottod serve creates it)") })
	}
	if err != nil {
		return fmt.Errorf("sottod: log key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return fmt.Errorf("sottod: log key %s: not a hex Ed25519 seed", logKeyFile)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	out := map[string]any{"public_key": hex.EncodeToString(pub)}
	if kl, ok := a.store.(relay.KeyLog); ok {
		n, err := kl.LogSize(ctx)
		if err != nil {
			return err
		}
		root, err := transparency.RootHash(storeHashes{ctx, kl}, n)
		if err != nil {
			return err
		}
		out["size"], out["root"] = n, hex.EncodeToString(root[:])
	}
	return a.emit(out, func(w io.Writer) {
		fmt.Fprintf(w, "public key:\t%x\n", pub)
		if n, ok := out["size"]; ok {
			fmt.Fprintf(w, "size:\t%d\nroot:\t%s\n", n, out["root"])
		}
	})
}

type storeHashes struct {
	ctx context.Context
	kl  relay.KeyLog
}

func (r storeHashes) ReadHashes(ids []transparency.NodeID) ([]transparency.Hash, error) {
	return r.kl.LogHashes(r.ctx, ids)
}
