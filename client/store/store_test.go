package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var testKDF = KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

func newTestStore(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "home")
	s, err := Create(context.Background(), dir, []byte("correct horse"), &Options{KDF: testKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestRoundTripAndNoPlaintextOnDisk(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	const user = "alice-the-username"
	const secret = "meet me at the blue door at nine"
	if err := s.Put(ctx, "contacts", []byte(user), []byte(secret+" contact")); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		id := []byte{byte(i), 1, 2, 3}
		added, err := s.AppendMessage(ctx, user, id, []byte(secret))
		if err != nil || !added {
			t.Fatalf("append %d: added=%v err=%v", i, added, err)
		}
	}
	added, err := s.AppendMessage(ctx, user, []byte{7, 1, 2, 3}, []byte("dup"))
	if err != nil || added {
		t.Fatalf("duplicate append: added=%v err=%v", added, err)
	}
	msgs, err := s.Messages(ctx, user, 10)
	if err != nil || len(msgs) != 10 || string(msgs[9]) != secret {
		t.Fatalf("messages: %d %v", len(msgs), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, dir, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	v, err := s2.Get(ctx, "contacts", []byte(user))
	if err != nil || string(v) != secret+" contact" {
		t.Fatalf("get after reopen: %q %v", v, err)
	}
	entries, err := s2.List(ctx, "contacts")
	if err != nil || len(entries) != 1 || string(entries[0].Key) != user {
		t.Fatalf("list: %+v %v", entries, err)
	}
	if _, err := s2.Get(ctx, "contacts", []byte("bob")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	// Every file in the directory (database, WAL, key file) is free of the
	// username and the content.
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) < 2 {
		t.Fatalf("expected database and key files, got %v", files)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{user, secret, "blue door", "contact"} {
			if bytes.Contains(b, []byte(needle)) {
				t.Errorf("%s contains plaintext %q", filepath.Base(f), needle)
			}
		}
	}
}

func TestWrongPassphrase(t *testing.T) {
	s, dir := newTestStore(t)
	s.Close()
	_, err := Open(context.Background(), dir, []byte("wrong horse"))
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("got %v, want ErrWrongPassphrase", err)
	}
}

func TestCreateTwiceFails(t *testing.T) {
	_, dir := newTestStore(t)
	_, err := Create(context.Background(), dir, []byte("another good passphrase"), &Options{KDF: testKDF})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
}

func TestWipe(t *testing.T) {
	ctx := context.Background()
	s, dir := newTestStore(t)
	if err := s.Put(ctx, "t", []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
	if Exists(dir) {
		t.Fatal("key file survived wipe")
	}
	if _, err := Open(ctx, dir, []byte("correct horse")); !errors.Is(err, ErrNoStore) {
		t.Fatalf("open after wipe: %v, want ErrNoStore", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 0 {
		t.Fatalf("files left after wipe: %v", left)
	}
}

func TestRowsCannotBeSwapped(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	if err := s.Put(ctx, "a", []byte("k1"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a", []byte("k2"), []byte("v2")); err != nil {
		t.Fatal(err)
	}
	// Copy row k1's sealed value over row k2, as an attacker with the file could.
	_, err := s.db.ExecContext(ctx, `UPDATE kv SET v = (SELECT v FROM kv WHERE tbl=? AND k=?) WHERE tbl=? AND k=?`,
		s.k.tableID("a"), s.k.mac([]byte("kv"), []byte("a"), []byte("k1")), s.k.tableID("a"), s.k.mac([]byte("kv"), []byte("a"), []byte("k2")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a", []byte("k2")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("swapped row: %v, want ErrCorrupt", err)
	}
	// Same for a row moved to another table.
	if _, err := s.db.ExecContext(ctx, `UPDATE kv SET tbl=? WHERE tbl=? AND k=?`, s.k.tableID("b"), s.k.tableID("a"), s.k.mac([]byte("kv"), []byte("a"), []byte("k1"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx, "b"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("moved row: %v, want ErrCorrupt", err)
	}
}

func TestUpdateRollsBack(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.Put(ctx, "t", []byte("k"), []byte("v")); err != nil {
			return err
		}
		if _, err := tx.AppendMessage(ctx, "c", []byte("id"), []byte("m")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "t", []byte("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rolled back put visible: %v", err)
	}
	if added, err := s.AppendMessage(ctx, "c", []byte("id"), []byte("m")); err != nil || !added {
		t.Fatalf("rolled back message visible: %v %v", added, err)
	}
	if err := s.UpdateMessage(ctx, "c", []byte("id"), []byte("m2")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Message(ctx, "c", []byte("id")); err != nil || string(v) != "m2" {
		t.Fatalf("updated message: %q %v", v, err)
	}
}
