package store

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestKeyFileParamsBound(t *testing.T) {
	_, dir := newTestStore(t)
	path := filepath.Join(dir, keyFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var k keyFile
	if err := json.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	// Any change to the recorded KDF parameters (such as a downgrade of
	// the cost) breaks the unwrap.
	k.Params.Time++
	b, _ = json.Marshal(&k)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(t.Context(), dir, []byte("correct horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("tampered parameters: %v", err)
	}
}

func FuzzReadKeyFile(f *testing.F) {
	kf, err := newKeyFile(rand.Reader, []byte("pw"), bytes.Repeat([]byte{7}, dataKeySize), testKDF)
	if err != nil {
		f.Fatal(err)
	}
	good, err := json.Marshal(kf)
	if err != nil {
		f.Fatal(err)
	}
	seeds := [][]byte{good, []byte(`{"version":2}`), []byte(`{}`), []byte(`null`)}
	if len(seeds) == 0 {
		f.Fatal("store: empty seed corpus")
	}
	for _, s := range seeds {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "key.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := readKeyFile(path)
		if err != nil {
			return
		}
		// Anything accepted has sane parameters and sizes.
		if k.Params.validate() != nil || len(k.Salt) != saltSize || k.Version != keyFileVersion {
			t.Fatalf("accepted bad key file %+v", k)
		}
		if k.Params.MemoryKiB <= 256 && k.Params.Time <= 2 {
			if _, err := k.unwrap([]byte("pw")); err != nil && !errors.Is(err, ErrWrongPassphrase) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped unwrap error %v", err)
			}
		}
	})
}
