package attach

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"sotto/client/content"
	"sotto/client/transport"
)

type refuseAll struct{ t *testing.T }

func (r refuseAll) RoundTrip(req *http.Request) (*http.Response, error) {
	r.t.Errorf("a request went out to %s", req.URL)
	return nil, errors.New("refused")
}

// Blob requests follow the client's plaintext rule: no http:// to a relay
// that is not on loopback, and nothing is sent before the refusal.
func TestBlobPlaintextRule(t *testing.T) {
	ctx := context.Background()
	c := &Client{Base: "ws://relay.example.org", HTTP: &http.Client{Transport: refuseAll{t}},
		CheckURL: transport.Options{}.CheckURL, Retries: 1,
		Token: func(context.Context) (string, error) { return "t", nil }}
	if _, _, err := c.Upload(ctx, bytes.NewReader([]byte("x")), 1, nil); !errors.Is(err, transport.ErrPlaintext) {
		t.Fatalf("upload: %v, want ErrPlaintext", err)
	}
	p := &content.AttachmentPointer{BlobId: make([]byte, IDSize), Key: make([]byte, KeySize), Digest: make([]byte, 32), Size: 1, ChunkSize: MinChunkSize}
	if err := c.Download(ctx, p, &bytes.Buffer{}, nil); !errors.Is(err, transport.ErrPlaintext) {
		t.Fatalf("download: %v, want ErrPlaintext", err)
	}
	if err := c.Delete(ctx, make([]byte, IDSize), make([]byte, WriteKeySize)); !errors.Is(err, transport.ErrPlaintext) {
		t.Fatalf("delete: %v, want ErrPlaintext", err)
	}
}
