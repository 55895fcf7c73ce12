package relay_test

import (
	"context"
	"testing"
	"time"

	"sotto/relay"
	"sotto/wire"
)

// TestSealedIdleFromLastSend: the sealed idle timeout runs from the last
// sealed send, not the first (later sends only record their time; the
// timer reads it when it fires): sends 0.6 s apart keep a connection with
// a 1 s idle time open past 1 s from the first, and once idle it closes.
func TestSealedIdleFromLastSend(t *testing.T) {
	r := startLimitRelay(t, func(c *relay.Config) {
		c.LoginTimeout = 300 * time.Millisecond
		c.SealedIdleTimeout = time.Second
	})
	bob := enrollFrom(t, r, "127.0.0.2", "bob")
	ak := make([]byte, wire.AccessKeySize)
	ak[0] = 7
	sendReq(t, bob.rawConn, &wire.Request{Id: 2, Body: &wire.Request_SetAccessKey{SetAccessKey: &wire.SetAccessKeyRequest{AccessKey: ak}}})
	bob.response(2)

	c := mustDial(t, r.url, "127.0.0.3", nil)
	sealed := &msgDevice{rawConn: &rawConn{t: t, c: c}, name: "sealed"}
	send := func(id uint64) {
		sendReq(t, sealed.rawConn, &wire.Request{Id: id, Body: &wire.Request_SealedSend{SealedSend: &wire.SealedSendRequest{
			Recipient: "bob", AccessKey: ak, MessageId: []byte{byte(id)},
			Messages: []*wire.OutgoingMessage{{DeviceId: bob.id, RegistrationId: 7, Type: wire.EnvelopeTypeSealed, Content: []byte("x")}},
		}}})
		sealed.response(id)
	}
	send(1)
	time.Sleep(600 * time.Millisecond)
	send(2)
	time.Sleep(600 * time.Millisecond)
	send(3) // 1.2 s after the first: open only if send 2 extended it
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("an idle sealed connection stayed open")
			}
			break
		}
	}
	r.waitMetric(t, "sotto_connections_unauthenticated", "0")
}
