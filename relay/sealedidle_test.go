package relay_test

import (
	"testing"
	"time"

	"github.com/coder/websocket"

	"sotto/relay"
	"sotto/wire"
)

// sealedToBob starts a relay with the given login and sealed idle
// timeouts, enrolls bob with an access key, and opens an unauthenticated
// connection whose send(id) seals a message to bob.
func sealedToBob(t *testing.T, login, sealedIdle time.Duration) (r *limitRelay, c *websocket.Conn, send func(id uint64)) {
	t.Helper()
	r = startLimitRelay(t, func(c *relay.Config) {
		c.LoginTimeout = login
		c.SealedIdleTimeout = sealedIdle
	})
	bob := enrollFrom(t, r, "127.0.0.2", "bob")
	ak := make([]byte, wire.AccessKeySize)
	ak[0] = 7
	sendReq(t, bob.rawConn, &wire.Request{Id: 2, Body: &wire.Request_SetAccessKey{SetAccessKey: &wire.SetAccessKeyRequest{AccessKey: ak}}})
	bob.response(2)

	c = mustDial(t, r.url, "127.0.0.3", nil)
	sealed := &msgDevice{rawConn: &rawConn{t: t, c: c}, name: "sealed"}
	send = func(id uint64) {
		sendReq(t, sealed.rawConn, &wire.Request{Id: id, Body: &wire.Request_SealedSend{SealedSend: &wire.SealedSendRequest{
			Recipient: "bob", AccessKey: ak, MessageId: []byte{byte(id)},
			Messages: []*wire.OutgoingMessage{{DeviceId: bob.id, RegistrationId: 7, Type: wire.EnvelopeTypeSealed, Content: []byte("x")}},
		}}})
		sealed.response(id)
	}
	return r, c, send
}

// TestSealedIdleFromLastSend: the sealed idle timeout runs from the last
// sealed send, not the first (later sends only record their time; the
// timer reads it when it fires): sends 0.3 s apart keep a connection with
// a 2 s idle time open for 4.5 s from the first, and once idle it closes.
// (A send scheduled late by a loaded machine has 1.7 s of slack.)
func TestSealedIdleFromLastSend(t *testing.T) {
	r, c, send := sealedToBob(t, 300*time.Millisecond, 2*time.Second)
	start := time.Now()
	for id := uint64(1); time.Since(start) < 4500*time.Millisecond; id++ {
		send(id) // past 2 s from the first: served only if the later sends extended it
		time.Sleep(300 * time.Millisecond)
	}
	waitClosed(t, c, 30*time.Second, "an idle sealed connection stayed open")
	r.waitMetric(t, "sotto_connections_unauthenticated", "0")
}
