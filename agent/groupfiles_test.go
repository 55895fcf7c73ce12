package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"path/filepath"
	"testing"
	"time"

	"sotto/agent/api"
)

// A group file as bytes, as the web app sends and opens one: uploaded as
// a request's body (nothing of it left in the agent's home after), and
// streamed to another member from GET …/content; the content of a
// message with no file is not_found.
func TestAgentsGroupFileBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay")
	}
	r := startRelay(t)
	aliceHome := r.enroll(t, "alice")
	alice := startAgent(t, aliceHome)
	bob := startAgent(t, r.enroll(t, "bob"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bst, err := bob.api.Events(ctx, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer bst.Close()
	next(t, bst, api.EventIdle)
	g, err := alice.api.CreateGroup(ctx, "team", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	next(t, bst, api.EventGroupUpdate)

	data := make([]byte, 300_000)
	rand.Read(data)
	sent, err := alice.api.UploadGroupFile(ctx, g.ID, "../../plan.bin", "the plan", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if sent.Attachment == nil || sent.Attachment.Name != "plan.bin" || sent.Attachment.Size != int64(len(data)) || sent.Text != "the plan" {
		t.Fatalf("sent %+v (%+v)", sent, sent.Attachment)
	}
	if left, _ := filepath.Glob(filepath.Join(aliceHome, ".upload-*")); len(left) > 0 {
		t.Errorf("the upload is still in the agent's home: %v", left)
	}
	got := next(t, bst, api.EventGroupMessage).GroupMessage
	body, err := bob.api.GroupContent(ctx, g.ID, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(b, data) {
		t.Fatalf("bob's copy: %v, %d bytes", err, len(b))
	}

	// A text message has no content.
	text, err := alice.api.SendGroup(ctx, g.ID, "no file here")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.api.GroupContent(ctx, g.ID, text.ID); !api.IsKind(err, api.KindNotFound) {
		t.Fatalf("content of a text: %v", err)
	}
}
