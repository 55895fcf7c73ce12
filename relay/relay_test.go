package relay_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

func TestNormalizeUsername(t *testing.T) {
	for in, want := range map[string]string{"Alice": "alice", "bob.smith_2-x": "bob.smith_2-x", "ABC": "abc"} {
		if got, err := relay.NormalizeUsername(in); err != nil || got != want {
			t.Errorf("%q: got %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"ab", strings.Repeat("a", 33), "al ice", "alïce", "a/b", ""} {
		if _, err := relay.NormalizeUsername(bad); !errors.Is(err, relay.ErrBadRequest) {
			t.Errorf("%q: accepted or wrong error %v", bad, err)
		}
	}
}

// TestSeatIDs: each registered invitation gets a fresh public id of 8
// base32 characters by which admins list and revoke its seat.
func TestSeatIDs(t *testing.T) {
	store, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	o := registerOrg(t, store)
	now := time.Now()
	var grants []*wire.OrgDocument
	for _, u := range []string{"alice", "bob", "carol"} {
		g, _, _ := grantFor(t, o.Key, u, nil, now.Add(time.Hour), now)
		grants = append(grants, g)
	}
	ids, err := relay.RegisterInvitations(context.Background(), store, grants, now)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if !regexp.MustCompile(`^[a-z2-7]{8}$`).MatchString(id) || seen[id] {
			t.Fatalf("seat ids %q", ids)
		}
		seen[id] = true
	}
	if len(ids) != 3 {
		t.Fatalf("seat ids %q", ids)
	}
}

func TestErrorTable(t *testing.T) {
	cases := map[error]wire.ErrorCode{
		nil:                                    wire.ErrorCode_OK,
		fmt.Errorf("x: %w", relay.ErrConflict): wire.ErrorCode_CONFLICT,
		relay.ErrBadCode:                       wire.ErrorCode_FORBIDDEN,
		&relay.RateError{RetryAfter: time.Second}: wire.ErrorCode_RATE_LIMITED,
		&relay.StaleError{Missing: []uint32{2}}:   wire.ErrorCode_STALE_DEVICES,
		relay.ErrExpired:                          wire.ErrorCode_SUBSCRIPTION_EXPIRED,
		errors.New("disk on fire"):                wire.ErrorCode_INTERNAL,
		wire.ErrFrameTooLarge:                     wire.ErrorCode_TOO_LARGE,
	}
	for err, want := range cases {
		if got := relay.ErrorCode(err); got != want {
			t.Errorf("%v: got %s want %s", err, got, want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := relay.New(relay.Config{})
	if err == nil || !strings.Contains(err.Error(), "Directory") || !strings.Contains(err.Error(), "Logger") {
		t.Fatalf("all problems reported at once: %v", err)
	}
}

// rawConn is a WebSocket client that sends arbitrary bytes.
type rawConn struct {
	t *testing.T
	c *websocket.Conn
}

var sockets = map[string]func(http.ResponseWriter, *http.Request) (relay.Socket, error){
	"coder": relay.AcceptWebSocket,
	"lean":  relay.AcceptLean,
}

func startRaw(t *testing.T, accept func(http.ResponseWriter, *http.Request) (relay.Socket, error)) *rawConn {
	t.Helper()
	store, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.AcceptWebSocket = accept
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
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	r := &rawConn{t: t, c: c}
	if f := r.read(); f.GetPush().GetChallenge() == nil || len(f.GetPush().GetChallenge().Nonce) != wire.NonceSize {
		t.Fatalf("first frame is not a challenge: %v", f)
	}
	return r
}

func (r *rawConn) write(typ websocket.MessageType, b []byte) {
	r.t.Helper()
	if err := r.c.Write(context.Background(), typ, b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) read() *wire.Frame {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := r.c.Read(ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	f, err := wire.DecodeFrame(b)
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

func (r *rawConn) expect(id uint64, code wire.ErrorCode) {
	r.t.Helper()
	resp := r.read().GetResponse()
	if resp == nil || resp.Id != id || resp.Code != code || resp.Message == "" {
		r.t.Fatalf("got %v, want id %d code %s", resp, id, code)
	}
}

func frame(version uint32, id uint64) []byte {
	b, _ := proto.Marshal(&wire.Frame{Version: version, Kind: &wire.Frame_Request{Request: &wire.Request{Id: id, Body: &wire.Request_Ping{Ping: &wire.PingRequest{}}}}})
	return b
}

func TestMalformedFrames(t *testing.T) {
	for name, accept := range sockets {
		t.Run(name, func(t *testing.T) { testMalformedFrames(t, accept) })
	}
}

func testMalformedFrames(t *testing.T, accept func(http.ResponseWriter, *http.Request) (relay.Socket, error)) {
	r := startRaw(t, accept)
	// Garbage, text frames, empty frames and pushes from the client are
	// answered with BAD_REQUEST and the connection stays usable.
	r.write(websocket.MessageBinary, []byte{0xff, 0xff, 0xff, 0x01})
	r.expect(0, wire.ErrorCode_BAD_REQUEST)
	r.write(websocket.MessageText, []byte("hello"))
	r.expect(0, wire.ErrorCode_BAD_REQUEST)
	empty, _ := proto.Marshal(&wire.Frame{Version: wire.Version})
	r.write(websocket.MessageBinary, empty)
	r.expect(0, wire.ErrorCode_BAD_REQUEST)
	push, _ := proto.Marshal(&wire.Frame{Version: wire.Version, Kind: &wire.Frame_Push{Push: &wire.Push{}}})
	r.write(websocket.MessageBinary, push)
	r.expect(0, wire.ErrorCode_BAD_REQUEST)
	// A request without a body, and one needing authentication.
	nobody, _ := proto.Marshal(&wire.Frame{Version: wire.Version, Kind: &wire.Frame_Request{Request: &wire.Request{Id: 3}}})
	r.write(websocket.MessageBinary, nobody)
	r.expect(3, wire.ErrorCode_UNAUTHENTICATED)
	// Oversized: TOO_LARGE with the request id when it can be read.
	big, _ := proto.Marshal(&wire.Frame{Version: wire.Version, Kind: &wire.Frame_Request{Request: &wire.Request{Id: 9,
		Body: &wire.Request_SendMessage{SendMessage: &wire.SendMessageRequest{Messages: []*wire.OutgoingMessage{{Content: make([]byte, wire.MaxFrameSize)}}}}}}})
	r.write(websocket.MessageBinary, big)
	r.expect(9, wire.ErrorCode_TOO_LARGE)
	// Still alive.
	r.write(websocket.MessageBinary, frame(wire.Version, 4))
	if resp := r.read().GetResponse(); resp.GetId() != 4 || resp.GetPing() == nil {
		t.Fatalf("ping: %v", resp)
	}
	// Unknown version: UPGRADE_REQUIRED, then the relay closes.
	r.write(websocket.MessageBinary, frame(wire.Version+1, 5))
	r.expect(5, wire.ErrorCode_UPGRADE_REQUIRED)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := r.c.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("after upgrade required: %v", err)
	}
}

func TestAbsurdFrameClosesConnection(t *testing.T) {
	for name, accept := range sockets {
		t.Run(name, func(t *testing.T) {
			r := startRaw(t, accept)
			if err := r.c.Write(context.Background(), websocket.MessageBinary, make([]byte, 8*wire.MaxFrameSize)); err != nil {
				// The relay may close (and reset) before the client has
				// finished writing: the connection is refused either way.
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, _, err := r.c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestFragmentsAndPing checks what the coder client sends only on
// request: fragmented messages and pings.
func TestFragmentsAndPing(t *testing.T) {
	for name, accept := range sockets {
		t.Run(name, func(t *testing.T) {
			r := startRaw(t, accept)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := make(chan *wire.Frame, 1)
			go func() {
				_, b, err := r.c.Read(ctx)
				if err != nil {
					got <- nil
					return
				}
				f, _ := wire.DecodeFrame(b)
				got <- f
			}()
			if err := r.c.Ping(ctx); err != nil {
				t.Fatalf("ping: %v", err)
			}
			w, err := r.c.Writer(ctx, websocket.MessageBinary)
			if err != nil {
				t.Fatal(err)
			}
			b := frame(wire.Version, 7)
			w.Write(b[:3])
			w.Write(b[3:])
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if f := <-got; f.GetResponse().GetId() != 7 || f.GetResponse().GetPing() == nil {
				t.Fatalf("fragmented request: got %v", f)
			}
		})
	}
}
