package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sotto/relay/sqlitestore"
	"sotto/transparency"
)

func TestLogKeyCreatedOnceAndKept(t *testing.T) {
	dir := t.TempDir()
	k1, err := loadLogKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, logKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	k2, err := loadLogKey(dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second start: a different key (%v)", err)
	}
	if err := os.WriteFile(filepath.Join(dir, logKeyFile), []byte("nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadLogKey(dir); err == nil {
		t.Fatal("a corrupt key file was accepted")
	}
}

func TestAdminKeylogShow(t *testing.T) {
	dir := t.TempDir()
	s, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{}) // a relay's database, before its first serve
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var out, errb bytes.Buffer
	if code := adminMain(context.Background(), []string{"keylog", "show", "-data", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "no key transparency log key yet") {
		t.Fatalf("before serve: %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, logKeyFile)); err == nil {
		t.Fatal("admin created a log key")
	}
	k, err := loadLogKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := adminMain(context.Background(), []string{"keylog", "show", "-data", dir, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got struct {
		PublicKey string `json:"public_key"`
		Size      uint64 `json:"size"`
		Root      string `json:"root"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %q", err, out.String())
	}
	if got.PublicKey != hex.EncodeToString(k.Public().(ed25519.PublicKey)) || got.Size != 0 ||
		got.Root != hex.EncodeToString(transparency.EmptyRoot[:]) {
		t.Fatalf("keylog show: %+v", got)
	}
}
