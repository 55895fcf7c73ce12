package blobstore_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"testing"

	"sotto/relay"
	"sotto/relay/blobstore"
	"sotto/relay/storetest"
)

// TestUpgradeDropsOwners opens an index made when blobs named their
// uploader: the account and device columns go, the blob stays readable.
func TestUpgradeDropsOwners(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, blobstore.FileName)
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE blobs (
	id BLOB PRIMARY KEY, account BLOB NOT NULL, device INTEGER NOT NULL, size INTEGER NOT NULL,
	committed INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blobs_owner ON blobs (account, device, expires);
INSERT INTO blobs VALUES (x'0102030405060708090a0b0c0d0e0f10', x'aa', 1, 10, 10, 1, 2)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	x, err := blobstore.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	id := relay.BlobID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	if b, err := x.Blob(ctx, id); err != nil || b.Size != 10 || !b.Complete() {
		t.Fatalf("blob after the upgrade: %+v %v", b, err)
	}
	db, err = sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info('blobs') WHERE name IN ('account', 'device')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("owner columns left: %d %v", n, err)
	}
	if _, err := x.Blob(ctx, relay.BlobID{}); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("unknown blob: %v", err)
	}
}

func TestConformance(t *testing.T) {
	storetest.RunBlobIndex(t, func(t *testing.T) (storetest.BlobIndex, func() storetest.BlobIndex) {
		dir := t.TempDir()
		open := func() storetest.BlobIndex {
			x, err := blobstore.Open(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
		return open(), open
	})
}
