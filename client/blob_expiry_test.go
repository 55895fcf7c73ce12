package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sotto/relay"
)

// TestStalledUploadDoesNotStopBlobExpiry: a device starts uploading a blob
// and then trickles nothing more, holding the request open. When the blob's
// upload TTL passes, the relay's janitor must still delete it and every
// other expired blob; a stalled upload must not hold the blob (and so the
// janitor, which deletes blobs one at a time) forever.
func TestStalledUploadDoesNotStopBlobExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, func(c *relay.BlobConfig) { c.UploadTTL = 2 * time.Second })
	code := r.code(t, 1, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	tok, err := alice.blobs().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	create := func(size string) (relay.BlobID, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, r.url+"/v1/blobs", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Blob-Length", size)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			ID       string `json:"id"`
			WriteKey string `json:"write_key"`
		}
		if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&out) != nil {
			t.Fatalf("create: %s", resp.Status)
		}
		id, err := relay.ParseBlobID(out.ID)
		if err != nil {
			t.Fatal(err)
		}
		return id, out.WriteKey
	}
	stalled, writeKey := create("1000")
	pr, pw := io.Pipe()
	// Runs before the relay's own cleanup, which waits for open requests.
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	req, _ := http.NewRequest(http.MethodPatch, r.url+"/v1/blobs/"+stalled.String(), pr)
	req.Header.Set("Blob-Write-Key", writeKey)
	req.Header.Set("Upload-Offset", "0")
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	if _, err := pw.Write(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	// The relay is inside the upload once its part file exists.
	part := filepath.Join(r.dir, "tmp", stalled.String()+".part")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(part); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upload never reached the relay")
		}
	}
	other, _ := create("5") // never uploaded: expires with the same upload TTL

	for _, id := range []relay.BlobID{stalled, other} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := r.idx.Blob(ctx, id)
			if errors.Is(err, relay.ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("blob %s still on the relay long after its upload TTL (the janitor waits on the stalled upload)", hex.EncodeToString(id[:4]))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if _, err := os.Stat(part); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stalled upload's part file: %v", err)
	}
}
