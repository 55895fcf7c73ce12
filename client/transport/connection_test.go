package transport_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"sotto/client/transport"
	"sotto/relay"
	"sotto/wire"
)

// TestLeanSocket runs the end-to-end tests again with the relay's minimal
// WebSocket implementation instead of coder/websocket (the client side
// stays coder/websocket).
func TestLeanSocket(t *testing.T) {
	leanSockets = true
	defer func() { leanSockets = false }()
	for name, fn := range map[string]func(*testing.T){
		"EnrollAndAuthenticate":              TestEnrollAndAuthenticate,
		"SendReceiveOnlineAndOffline":        TestSendReceiveOnlineAndOffline,
		"SendToOwnDevicesAndStaleList":       TestSendToOwnDevicesAndStaleList,
		"RevokedByAdminProcess":              TestRevokedByAdminProcess,
		"DroppedConnectionLosesNothingAcked": TestDroppedConnectionLosesNothingAcknowledged,
		"ConcurrentSendersOnlineReceiver":    TestConcurrentSendersOnlineReceiver,
	} {
		t.Run(name, fn)
	}
}

// TestLoginTimeout: the relay closes a connection that neither logs in nor
// provisions within LoginTimeout, and only that one. The timeout is long
// enough that enrolling and provisioning finish within it on a loaded
// machine; the connections that must survive are opened before the idle
// one, so once the idle one is closed their own timeout has passed too,
// with no sleep in between.
func TestLoginTimeout(t *testing.T) {
	const timeout = 3 * time.Second
	r := startRelay(t, func(c *relay.Config) { c.LoginTimeout = timeout })
	ctx := context.Background()
	authed, _ := r.join(t, "alice")
	prov := r.dial(t)
	if _, err := prov.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	idle := r.dial(t)
	select {
	case <-idle.Done():
	case <-time.After(10 * timeout):
		t.Fatal("unauthenticated connection not closed")
	}
	// The provisioning channel waits longer (as long as a link token).
	if _, err := prov.Ping(ctx); err != nil {
		t.Fatalf("provisioning connection closed early: %v", err)
	}
	if _, err := authed.Ping(ctx); err != nil {
		t.Fatalf("authenticated connection closed: %v", err)
	}
}

// TestNewerRelayVersion: a relay speaking another protocol version ends
// the connection with an error that names the version.
func TestNewerRelayVersion(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		b, _ := proto.Marshal(&wire.Frame{Version: wire.Version + 1, Kind: &wire.Frame_Push{Push: &wire.Push{}}})
		c.Write(r.Context(), websocket.MessageBinary, b)
		c.Read(r.Context())
	}))
	defer srv.Close()
	_, err := transport.Dial(context.Background(), srv.URL, transport.Options{})
	var ve *wire.VersionError
	if !errors.As(err, &ve) || ve.Got != wire.Version+1 || !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("got %v", err)
	}
}
