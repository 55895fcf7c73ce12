package relay_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// msgDevice is an enrolled device on a raw WebSocket.
type msgDevice struct {
	*rawConn
	name  string
	key   ed25519.PrivateKey
	id    uint32
	reg   uint32
	nonce []byte
}

func (d *msgDevice) send(id uint64, body any) {
	d.t.Helper()
	req := &wire.Request{Id: id}
	switch b := body.(type) {
	case *wire.SendMessageRequest:
		req.Body = &wire.Request_SendMessage{SendMessage: b}
	case *wire.AckRequest:
		req.Body = &wire.Request_Ack{Ack: b}
	case *wire.EnrollRequest:
		req.Body = &wire.Request_Enroll{Enroll: b}
	case *wire.AuthenticateRequest:
		req.Body = &wire.Request_Authenticate{Authenticate: b}
	case *wire.PingRequest:
		req.Body = &wire.Request_Ping{Ping: b}
	}
	b, err := wire.EncodeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: req}})
	if err != nil {
		d.t.Fatal(err)
	}
	d.write(websocket.MessageBinary, b)
}

// next reads frames, keeping the latest challenge, until a response or
// an envelope or queue-empty push.
func (d *msgDevice) next() *wire.Frame {
	d.t.Helper()
	for {
		f := d.read()
		if ch := f.GetPush().GetChallenge(); ch != nil {
			d.nonce = ch.Nonce
			continue
		}
		return f
	}
}

func (d *msgDevice) response(id uint64) *wire.Response {
	d.t.Helper()
	r := d.next().GetResponse()
	if r == nil || r.Id != id || r.Code != wire.ErrorCode_OK {
		d.t.Fatalf("%s: got %v, want an OK response to %d", d.name, r, id)
	}
	return r
}

// login reads the response to request 1 and the queue-empty push that
// follows a login with nothing queued, in either order.
func (d *msgDevice) login() *wire.Response {
	d.t.Helper()
	var resp *wire.Response
	empty := false
	for resp == nil || !empty {
		f := d.next()
		switch {
		case f.GetResponse().GetId() == 1 && f.GetResponse().GetCode() == wire.ErrorCode_OK:
			resp = f.GetResponse()
		case f.GetPush().GetQueueEmpty() != nil:
			empty = true
		default:
			d.t.Fatalf("%s: at login: %v", d.name, f)
		}
	}
	return resp
}

func dialDevice(t *testing.T, url, name string) *msgDevice {
	t.Helper()
	c, _, err := websocket.Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	d := &msgDevice{rawConn: &rawConn{t: t, c: c}, name: name}
	if f := d.read(); f.GetPush().GetChallenge() == nil {
		t.Fatalf("first frame is not a challenge: %v", f)
	} else {
		d.nonce = f.GetPush().GetChallenge().Nonce
	}
	return d
}

// TestMessaging runs sends and acks through a real relay and SQLite
// store on both socket implementations: pipelined sends are each answered
// once and delivered once in order, a retried send is a duplicate, a
// quiet Ack is not answered, and acked envelopes are gone on reconnect.
func TestMessaging(t *testing.T) {
	for name, accept := range sockets {
		t.Run(name, func(t *testing.T) {
			url, enroll := startMessaging(t, accept)
			alice, bob := enroll("alice", 11), enroll("bob", 22)
			testMessaging(t, url, alice, bob)
		})
	}
}

// startMessaging starts a relay on a fresh SQLite store and returns its
// URL and a function that enrolls a device.
func startMessaging(t *testing.T, accept func(http.ResponseWriter, *http.Request) (relay.Socket, error)) (string, func(string, uint32) *msgDevice) {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	org := registerOrg(t, store)
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	cfg.AcceptWebSocket = accept
	cfg.DeviceRate = relay.Rate{PerSecond: 10000, Burst: 1000}
	// Recipients drop out of the cache all the time, so that sends take
	// the asynchronous path and the general one in turns.
	cfg.DirectoryCacheTTL = time.Millisecond
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close(); store.Close() })
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/ws"

	enroll := func(name string, reg uint32) *msgDevice {
		d := dialDevice(t, url, name)
		r, key := enrollRequest(org.invite(name), make([]byte, 33), reg)
		d.key, d.reg = key, reg
		d.send(1, signEnroll(r, key, d.nonce))
		d.id = d.login().GetEnroll().DeviceId
		return d
	}
	return url, enroll
}

func testMessaging(t *testing.T, url string, alice, bob *msgDevice) {

	const n = 200
	mid := func(i int) []byte { return binary.BigEndian.AppendUint32([]byte("mid-"), uint32(i)) }
	sendTo := func(i int) *wire.SendMessageRequest {
		return &wire.SendMessageRequest{Recipient: "bob", MessageId: mid(i), Messages: []*wire.OutgoingMessage{
			{DeviceId: bob.id, RegistrationId: bob.reg, Type: 1, Content: []byte(strings.Repeat("c", i))}}}
	}
	for i := range n {
		alice.send(uint64(100+i), sendTo(i))
	}
	answered := map[uint64]bool{}
	for range n {
		r := alice.next().GetResponse()
		if r == nil || r.Code != wire.ErrorCode_OK || r.GetSendMessage() == nil || r.GetSendMessage().Duplicate ||
			answered[r.Id] || r.Id < 100 || r.Id >= 100+n {
			t.Fatalf("send response %v", r)
		}
		answered[r.Id] = true
	}
	var ids [][]byte
	for i := range n {
		e := bob.next().GetPush().GetEnvelope()
		if e == nil || string(e.MessageId) != string(mid(i)) || len(e.Content) != i || e.Sender != "alice" {
			t.Fatalf("envelope %d: %v", i, e)
		}
		ids = append(ids, e.Id)
	}
	// A retry is a duplicate and delivers nothing new.
	alice.send(99, sendTo(7))
	if r := alice.response(99); !r.GetSendMessage().Duplicate {
		t.Fatal("retry not reported as a duplicate")
	}
	bob.send(500, &wire.AckRequest{EnvelopeIds: ids[:n/2], Quiet: true})
	bob.send(501, &wire.AckRequest{EnvelopeIds: ids[n/2:]})
	if r := bob.response(501); r.GetAck() == nil {
		t.Fatalf("ack response %v", r)
	}
	bob.send(502, &wire.PingRequest{})
	bob.response(502)

	// Everything acked is gone: a new connection finds an empty queue.
	bob.c.CloseNow() // (coder's Close would wait for its close handshake)
	again := dialDevice(t, url, "bob")
	again.send(1, &wire.AuthenticateRequest{Username: "bob", DeviceId: bob.id,
		Signature: ed25519.Sign(bob.key, wire.AuthTranscript(again.nonce, "bob", bob.id))})
	again.login()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// TestSlowReader fills a device's socket while it does not read: the
// relay's writes go partial, finish in the background, and the device
// then reads every envelope intact and in order.
func TestSlowReader(t *testing.T) {
	for name, accept := range sockets {
		t.Run(name, func(t *testing.T) {
			_, enroll := startMessaging(t, accept)
			alice, bob := enroll("alice", 11), enroll("bob", 22)
			const n = 120
			content := func(i int) []byte {
				return bytes.Repeat([]byte{byte(i)}, 100<<10) // 12 MB in all
			}
			for i := range n {
				alice.send(uint64(100+i), &wire.SendMessageRequest{Recipient: "bob", MessageId: []byte{byte(i), 1},
					Messages: []*wire.OutgoingMessage{{DeviceId: bob.id, RegistrationId: bob.reg, Type: 1, Content: content(i)}}})
			}
			for range n {
				if r := alice.next().GetResponse(); r.GetCode() != wire.ErrorCode_OK {
					t.Fatalf("send: %v", r)
				}
			}
			for i := range n {
				f := bob.next()
				e := f.GetPush().GetEnvelope()
				if e == nil {
					t.Fatalf("envelope %d: got %v", i, f)
				}
				if !bytes.Equal(e.Content, content(i)) {
					t.Fatalf("envelope %d damaged or missing: %v %d", i, e.GetMessageId(), len(e.GetContent()))
				}
			}
		})
	}
}
