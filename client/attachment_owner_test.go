package client

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"sotto/client/content"
)

// TestAttachmentIDOfAnotherMessageRefused: a contact who knows the id of a
// file message sent to them (every recipient does) sends back an attachment
// of their own under that id. The sender's record of its own file (pointer,
// file key) must not be replaced: its download stays its own file, and its
// delete for everyone still takes its own blob down.
func TestAttachmentIDOfAnotherMessageRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, aliceEvents := r.enroll(t, code, "alice", true)
	mallory, malloryEvents := r.enroll(t, code, "mallory", true)

	path, _ := writeRandomFile(t, t.TempDir(), 20<<10)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendFile(ctx, "mallory", path, FileOptions{Caption: "the contract"})
	if err != nil {
		t.Fatal(err)
	}
	waitEvent(t, malloryEvents, EventMessage)
	alicePtr := attachmentPointer(t, alice, sent.ID)

	// Mallory uploads another file and points to it under alice's id.
	evil := bytes.Repeat([]byte("forged "), 1000)
	ptr, _, err := mallory.blobs().Upload(ctx, bytes.NewReader(evil), int64(len(evil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	ptr.FileName, ptr.ContentType = "contract.pdf", "application/pdf"
	ct := &content.Content{Version: content.Version, Id: sent.ID, SentAtMs: time.Now().UnixMilli(),
		Body: &content.Content_Attachment{Attachment: ptr}}
	if _, err := mallory.sendContent(ctx, "alice", ct, ct.Id); err != nil {
		t.Fatal(err)
	}
	// Alice processes it (shown or refused), then a marker message.
	if _, err := mallory.Send(ctx, "alice", "marker"); err != nil {
		t.Fatal(err)
	}
	for {
		e := <-aliceEvents
		if e.Kind == EventMessage && e.Message.Text == "marker" {
			break
		}
	}

	if got := attachmentPointer(t, alice, sent.ID); !bytes.Equal(got.BlobId, alicePtr.BlobId) || !bytes.Equal(got.Key, alicePtr.Key) {
		t.Fatal("alice's record of her own file now points to mallory's blob")
	}
	out, _, err := alice.Download(ctx, sent.ID, DownloadOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, orig) {
		t.Fatal("alice's own file message now downloads mallory's file")
	}
	var rec attachmentRecord
	if b, err := alice.db.Get(ctx, tblAttachments, sent.ID); err != nil || json.Unmarshal(b, &rec) != nil || rec.Author != "alice" {
		t.Fatalf("alice's attachment record: %+v %v", rec, err)
	}
	before := len(r.blobFiles(t))
	if err := alice.DeleteForEveryone(ctx, "mallory", sent.ID); err != nil {
		t.Fatal(err)
	}
	if after := len(r.blobFiles(t)); after != before-1 {
		t.Fatalf("alice's delete for everyone left her blob: %d blob files before, %d after", before, after)
	}
}
