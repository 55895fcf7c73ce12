package relay_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// TestSealedSendUnauthenticated checks the sealed path's refusals that need
// no enrolled account (the full path runs in the client's end-to-end tests):
// an unknown recipient gets the same UNAUTHENTICATED as a wrong access key,
// malformed sends are BAD_REQUEST, and the per-IP limit applies.
func TestSealedSendUnauthenticated(t *testing.T) {
	store, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.SealedRate = relay.Rate{PerSecond: 0.001, Burst: 3}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close(); store.Close() })
	c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(hs.URL, "http")+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	r := &rawConn{t: t, c: c}
	r.read() // the challenge
	send := func(id uint64, s *wire.SealedSendRequest) {
		b, _ := proto.Marshal(&wire.Frame{Version: wire.Version, Kind: &wire.Frame_Request{Request: &wire.Request{Id: id,
			Body: &wire.Request_SealedSend{SealedSend: s}}}})
		r.write(websocket.MessageBinary, b)
	}
	msg := []*wire.OutgoingMessage{{DeviceId: 1, RegistrationId: 1, Type: wire.EnvelopeTypeSealed, Content: []byte("sealed")}}
	send(1, &wire.SealedSendRequest{Recipient: "nobody", Messages: msg, MessageId: []byte("m1"), AccessKey: make([]byte, 16)})
	r.expect(1, wire.ErrorCode_UNAUTHENTICATED)
	send(2, &wire.SealedSendRequest{Recipient: "nobody", Messages: msg, AccessKey: make([]byte, 16)})
	r.expect(2, wire.ErrorCode_BAD_REQUEST)
	send(3, &wire.SealedSendRequest{Recipient: "nobody", MessageId: []byte("m3"), AccessKey: make([]byte, 16)})
	r.expect(3, wire.ErrorCode_BAD_REQUEST)
	// The burst of 3 is spent: the fourth is rate limited.
	send(4, &wire.SealedSendRequest{Recipient: "nobody", Messages: msg, MessageId: []byte("m4"), AccessKey: make([]byte, 16)})
	resp := r.read().GetResponse()
	if resp.GetId() != 4 || resp.GetCode() != wire.ErrorCode_RATE_LIMITED || resp.GetRetryAfterMs() <= 0 {
		t.Fatalf("fourth sealed send: %v", resp)
	}
	// Authenticated requests are still refused on this connection.
	b, _ := proto.Marshal(&wire.Frame{Version: wire.Version, Kind: &wire.Frame_Request{Request: &wire.Request{Id: 5,
		Body: &wire.Request_SenderCertificate{SenderCertificate: &wire.SenderCertificateRequest{}}}}})
	r.write(websocket.MessageBinary, b)
	r.expect(5, wire.ErrorCode_UNAUTHENTICATED)
}
