package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/attach"
	"sotto/client/content"
	"sotto/relay"
)

// attachmentWriteKey returns the blob write key c stores for message id
// (nil when c did not upload it).
func attachmentWriteKey(t *testing.T, c *Client, id []byte) []byte {
	t.Helper()
	b, err := c.db.Get(context.Background(), tblAttachments, id)
	if err != nil {
		t.Fatal(err)
	}
	var rec attachmentRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.WriteKey
}

// attachmentPointer returns the pointer c stores for message id.
func attachmentPointer(t *testing.T, c *Client, id []byte) *content.AttachmentPointer {
	t.Helper()
	b, err := c.db.Get(context.Background(), tblAttachments, id)
	if err != nil {
		t.Fatal(err)
	}
	var rec attachmentRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	var p content.AttachmentPointer
	if err := proto.Unmarshal(rec.Pointer, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestBlobDeleteByUploaderOnly: the device that uploaded a blob, which
// alone holds its write key, can delete it before its TTL, file and index
// record; the recipient, who knows the id, cannot, with its token or
// without, nor with a made-up key; afterwards a download finds nothing.
func TestBlobDeleteByUploaderOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	bob, bobEvents := r.enroll(t, code, "bob", true)
	path, _ := writeRandomFile(t, t.TempDir(), 100<<10)
	m := sendFile(t, alice, bobEvents, path, FileOptions{})
	ptr := attachmentPointer(t, alice, m.ID)
	var id relay.BlobID
	copy(id[:], ptr.BlobId)
	if n := len(r.blobFiles(t)); n != 1 {
		t.Fatalf("%d blob files after the send, want 1", n)
	}

	// Only the uploader keeps the write key, in its encrypted store.
	writeKey := attachmentWriteKey(t, alice, m.ID)
	if len(writeKey) != attach.WriteKeySize {
		t.Fatalf("the uploader's write key: %x", writeKey)
	}
	if k := attachmentWriteKey(t, bob, m.ID); k != nil {
		t.Fatalf("the recipient holds a write key: %x", k)
	}
	// The recipient holds the id (the download capability) but may not
	// delete: 403, and the blob stays downloadable.
	if err := bob.blobs().Delete(ctx, ptr.BlobId, make([]byte, attach.WriteKeySize)); !errors.Is(err, attach.ErrDenied) {
		t.Fatalf("recipient's delete: %v, want ErrDenied", err)
	}
	tok, err := bob.blobs().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, r.url+"/v1/blobs/"+id.String(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("delete with a device token and no write key: %s", resp.Status)
	}
	if _, _, err := bob.Download(ctx, m.ID, DownloadOptions{Dir: t.TempDir()}); err != nil {
		t.Fatalf("download after a refused delete: %v", err)
	}

	if err := alice.blobs().Delete(ctx, ptr.BlobId, writeKey); err != nil {
		t.Fatalf("uploader's delete: %v", err)
	}
	if files := r.blobFiles(t); len(files) != 0 {
		t.Fatalf("blob files left: %v", files)
	}
	if left, _ := filepath.Glob(filepath.Join(r.dir, "tmp", "*")); len(left) != 0 {
		t.Fatalf("upload files left: %v", left)
	}
	if _, err := r.idx.Blob(ctx, id); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("index record after delete: %v", err)
	}
	if _, _, err := bob.Download(ctx, m.ID, DownloadOptions{Dir: t.TempDir()}); !errors.Is(err, attach.ErrNotFound) {
		t.Fatalf("download after delete: %v, want attach.ErrNotFound", err)
	}
	if err := alice.blobs().Delete(ctx, ptr.BlobId, writeKey); !errors.Is(err, attach.ErrNotFound) {
		t.Fatalf("second delete: %v, want attach.ErrNotFound", err)
	}
	if err := alice.blobs().Delete(ctx, ptr.BlobId[:8], writeKey); !errors.Is(err, attach.ErrNotFound) {
		t.Fatalf("short id: %v", err)
	}

	// The relay counted one deletion.
	resp, err = http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "\nsotto_blobs_deleted_total 1\n") {
		t.Fatal("sotto_blobs_deleted_total is not 1")
	}
}

// TestSendFileRefusedLeavesNoBlob: when the relay refuses the send after
// the upload (no such user), the uploaded blob does not stay behind.
func TestSendFileRefusedLeavesNoBlob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 1, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	path, _ := writeRandomFile(t, t.TempDir(), 10<<10)
	_, err := alice.SendFile(ctx, "nobody", path, FileOptions{})
	if err == nil || !sendRefused(err) {
		t.Fatalf("send to nobody: %v (refused: %v)", err, sendRefused(err))
	}
	if files := r.blobFiles(t); len(files) != 0 {
		t.Fatalf("blob files left after a refused send: %v", files)
	}
	left, err := r.idx.ExpiredBlobs(ctx, r.now().Add(365*24*time.Hour), 10)
	if err != nil || len(left) != 0 {
		t.Fatalf("index records left: %v %v", left, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the local file: %v", err)
	}
}

// TestDeleteForEveryoneTakesTheAttachment: deleting an own file message
// for everyone deletes its blob on the relay, and the recipient forgets
// the file key and removes the copy it downloaded.
func TestDeleteForEveryoneTakesTheAttachment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	bob, bobEvents := r.enroll(t, code, "bob", true)
	path, _ := writeRandomFile(t, t.TempDir(), 100<<10)
	m := sendFile(t, alice, bobEvents, path, FileOptions{Caption: "a file"})
	got, _, err := bob.Download(ctx, m.ID, DownloadOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.DeleteForEveryone(ctx, "bob", m.ID); err != nil {
		t.Fatal(err)
	}
	if files := r.blobFiles(t); len(files) != 0 {
		t.Fatalf("blob files left on the relay: %v", files)
	}
	if _, err := alice.db.Get(ctx, tblAttachments, m.ID); err == nil {
		t.Fatal("the sender still stores the pointer")
	}
	e := waitEvent(t, bobEvents, EventUpdate)
	if !e.Message.Deleted || e.Message.Attachment != nil {
		t.Fatalf("bob's message after the delete: %+v", e.Message)
	}
	if _, err := bob.db.Get(ctx, tblAttachments, m.ID); err == nil {
		t.Fatal("the recipient still stores the pointer and file key")
	}
	if _, err := os.Stat(got); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the recipient's download is still there: %v", err)
	}
	if _, _, err := bob.Download(ctx, m.ID, DownloadOptions{Dir: t.TempDir()}); !errors.Is(err, ErrNoAttachment) {
		t.Fatalf("download after the delete: %v", err)
	}
}

// TestWipeRemovesDownloadsOutsideTheStore: a wipe order reaches the
// attachments the device saved outside its store folder too (the store's
// own wipe reaches only the folder).
func TestWipeRemovesDownloadsOutsideTheStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	bob, bobEvents := r.enroll(t, code, "bob", true)
	path, _ := writeRandomFile(t, t.TempDir(), 10<<10)
	m := sendFile(t, alice, bobEvents, path, FileOptions{})
	outside := filepath.Join(t.TempDir(), "saved.bin")
	if _, _, err := bob.Download(ctx, m.ID, DownloadOptions{Out: outside}); err != nil {
		t.Fatal(err)
	}
	inside, _, err := bob.Download(ctx, m.ID, DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bob.wipeSelf(0)
	if e := waitEvent(t, bobEvents, EventWiped); e.Err != nil {
		t.Fatalf("wipe: %v", e.Err)
	}
	for _, f := range []string{outside, inside} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s survived the wipe: %v", f, err)
		}
	}
}

// TestAbandonedUploadLeavesNothing: an upload given up midway (here the
// user cancels) is deleted from the relay at once, not after the upload
// TTL, so it stops counting against the quota.
func TestAbandonedUploadLeavesNothing(t *testing.T) {
	t.Parallel()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	r.enroll(t, code, "bob", false)
	path, _ := writeRandomFile(t, t.TempDir(), 4<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var created atomic.Bool
	_, err := alice.SendFile(ctx, "bob", path, FileOptions{Progress: func(done, total int64) {
		if done > 1<<20 {
			created.Store(true)
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || !created.Load() {
		t.Fatalf("canceled upload: %v (canceled mid-upload: %v)", err, created.Load())
	}
	left, err := r.idx.ExpiredBlobs(context.Background(), r.now().Add(365*24*time.Hour), 10)
	if err != nil || len(left) != 0 {
		t.Fatalf("index records left: %v %v", left, err)
	}
	if parts, _ := filepath.Glob(filepath.Join(r.dir, "tmp", "*")); len(parts) != 0 {
		t.Fatalf("upload files left: %v", parts)
	}
}

// TestDeleteForEveryoneFromAnotherOwnDevice: when the sender deletes a
// file message for everyone from a device other than the one that
// uploaded it, the uploader takes the blob down when the delete reaches it.
func TestDeleteForEveryoneFromAnotherOwnDevice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	laptop, laptopEvents := r.enroll(t, code, "alice", true)
	_, bobEvents := r.enroll(t, code, "bob", true)
	l, err := BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := laptop.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	phoneEvents := make(chan Event, 100)
	phone, err := l.Finish(ctx, filepath.Join(t.TempDir(), "phone"), []byte("pw"), "phone", &Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: func(e Event) { phoneEvents <- e }})
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	if err := phone.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	path, _ := writeRandomFile(t, t.TempDir(), 10<<10)
	m := sendFile(t, laptop, bobEvents, path, FileOptions{})
	if e := waitEvent(t, phoneEvents, EventMessage); !bytes.Equal(e.Message.ID, m.ID) {
		t.Fatalf("phone got %+v", e.Message)
	}
	if err := phone.DeleteForEveryone(ctx, "bob", m.ID); err != nil {
		t.Fatal(err)
	}
	if e := waitEvent(t, laptopEvents, EventUpdate); !e.Message.Deleted {
		t.Fatalf("laptop's message after the delete: %+v", e.Message)
	}
	// The laptop deletes the blob right after it committed the delete.
	deadline := time.Now().Add(20 * time.Second)
	for len(r.blobFiles(t)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("blob files left on the relay: %v", r.blobFiles(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := laptop.db.Get(ctx, tblAttachments, m.ID); err == nil {
		t.Fatal("the uploader still stores the pointer")
	}
}
