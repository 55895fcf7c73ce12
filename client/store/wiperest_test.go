package store

import (
	"os"
	"path/filepath"
	"testing"
)

// Wipe shreds the client's downloaded attachments with the store, and
// leaves alone what else the user keeps in the folder.
func TestWipeTakesAttachmentsNotUserFiles(t *testing.T) {
	s, dir := newTestStore(t)
	s.Close()
	att := filepath.Join(dir, "attachments", "sub")
	if err := os.MkdirAll(att, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(att, "photo.jpg"), []byte("plaintext"), 0o600); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "outside.txt")
	if err := os.WriteFile(outside, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "attachments", "link")); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(mine, []byte("the user's own file"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "attachments")); !os.IsNotExist(err) {
		t.Fatalf("attachments survived the wipe: %v", err)
	}
	for _, p := range []string{mine, outside} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
}

// A database file that cannot be shredded (here a folder where the
// journal goes) is reported, and the downloaded attachments are shredded
// all the same: a wipe used to stop at the database, and the duress wipe,
// which reports nothing, then left plaintext attachments behind (seen when
// SQLite removed its -wal file during the wipe).
func TestWipeGoesOnAfterADatabaseFileFails(t *testing.T) {
	s, dir := newTestStore(t)
	s.Close()
	if err := os.Mkdir(filepath.Join(dir, dbFileName+"-journal"), 0o700); err != nil {
		t.Fatal(err)
	}
	att := filepath.Join(dir, "attachments")
	if err := os.MkdirAll(att, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(att, "note.txt"), []byte("plaintext"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Wipe(dir); err == nil {
		t.Fatal("a database file that could not be shredded was not reported")
	}
	if _, err := os.Stat(att); !os.IsNotExist(err) {
		t.Fatalf("attachments survived the wipe: %v", err)
	}
	if Exists(dir) {
		t.Fatal("the key file survived the wipe")
	}
}
