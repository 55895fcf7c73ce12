package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/client/transport"
	"sotto/wire"
)

// The admin sees which devices applied a notice, from their signed
// receipts; a receipt the relay invents (its signature does not verify
// with the device key it names) is not counted. With the signature check
// switched off, the invented receipt counts and this test fails.
func TestDeliveryCountsSignedReceiptsOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newOrgWorld(t)
	bob := w.member(t, "bob")
	n, err := w.admin.PublishNotice(ctx, "fire drill at three")
	if err != nil || n != 2 {
		t.Fatalf("publish: %d %v", n, err)
	}
	waitEvent(t, bob.events, EventOrgNotice)
	var d []Delivery
	for deadline := time.Now().Add(20 * time.Second); ; {
		if d, err = w.admin.Deliveries(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if len(d) == 1 && len(d[0].Applied) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receipts never counted: %+v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d[0].Kind != "notice" || d[0].Queued != 2 || !slices.Contains(d[0].Applied, "bob.1") || d[0].Bad != 0 {
		t.Fatalf("delivery %+v", d[0])
	}
	// The relay adds a receipt of its own for a device it made up.
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	fake, _ := proto.Marshal(&wire.OrgReceipt{Username: "ghost", DeviceId: 1, AtMs: time.Now().UnixMilli(),
		Signature: make([]byte, ed25519.SignatureSize), DeviceKey: pub})
	if err := w.r.store.PutOrgDocument(ctx, wire.OrgDocumentKind_RELAY_RECEIPT, d[0].ID+"/ghost/1", fake); err != nil {
		t.Fatal(err)
	}
	if d, err = w.admin.Deliveries(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if len(d[0].Applied) != 2 || d[0].Bad != 1 {
		t.Fatalf("with an invented receipt: %+v", d[0])
	}
	// A member who is not an admin cannot see who applied what: the relay
	// answers only a query signed with the org key.
	hash, _ := hex.DecodeString(d[0].ID)
	conn, err := bob.c.connection()
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	at := time.Now().UnixMilli()
	_, err = conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgDelivery{OrgDelivery: &wire.OrgDeliveryRequest{
		DocumentHash: hash, AtMs: at, Signature: ed25519.Sign(other, org.DeliveryQueryMessage(hash, at))}}})
	if transport.Code(err) != wire.ErrorCode_FORBIDDEN {
		t.Fatalf("a member's delivery query: %v", err)
	}
}
