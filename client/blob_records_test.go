package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"sotto/relay/blobstore"
)

// TestBlobRecordsDoNotLinkUploader: after Alice sends a file and Bob
// downloads it, nothing in the relay's blob index ties the blob to Alice
// or Bob. The only per-device record is the quota's daily sum
// (blob_charges), which names no blob. Bob's download shows no token.
func TestBlobRecordsDoNotLinkUploader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	bob, bobEvents := r.enroll(t, code, "bob", true)
	path, want := writeRandomFile(t, t.TempDir(), 50<<10)
	m := sendFile(t, alice, bobEvents, path, FileOptions{})
	ptr := attachmentPointer(t, bob, m.ID)

	// Bob's download asks for no token: the relay gets the id only.
	bc := bob.blobs()
	bc.Token = func(context.Context) (string, error) {
		t.Error("a download asked for a device token")
		return "", errors.New("no token for downloads")
	}
	h := sha256.New()
	if err := bc.Download(ctx, ptr, h, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		t.Fatal("downloaded content differs")
	}

	var ids [][]byte
	for _, u := range []string{"alice", "bob"} {
		a, err := r.store.AccountByName(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID[:])
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(r.dir, blobstore.FileName)}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT * FROM blobs`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	n := 0
	for rows.Next() {
		n++
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			b, ok := v.([]byte)
			if !ok {
				continue
			}
			for _, id := range ids {
				if bytes.Contains(b, id) {
					t.Errorf("blob record column %s holds an account id", cols[i])
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d blob records, want 1", n)
	}
	for _, c := range cols {
		switch c {
		case "account", "device", "owner", "uploader":
			t.Errorf("the blob index has a column %q", c)
		}
	}
	// The quota's record: Alice's device, one day, bytes; no blob.
	var charges int
	if err := db.QueryRow(`SELECT count(*) FROM blob_charges WHERE account = ?`, ids[0]).Scan(&charges); err != nil || charges != 1 {
		t.Fatalf("alice's charges: %d %v", charges, err)
	}
}
