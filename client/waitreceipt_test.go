package client

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// waitMessageAndReceipt waits, in either order, for the message text
// ("": none) and for the delivery receipt of the own message id. A client
// reports a message before it sends the receipt, so a test that wants
// nothing left in flight (say, before it disconnects the other side and
// waits for an empty mailbox) waits for the receipt, which a client
// reports only after acknowledging it.
func waitMessageAndReceipt(t *testing.T, events chan Event, text string, id []byte) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	gotMsg, gotReceipt := text == "", false
	for !gotMsg || !gotReceipt {
		select {
		case e := <-events:
			switch {
			case e.Kind == EventMessage && e.Message.Text == text:
				gotMsg = true
			case e.Kind == EventReceipt && !e.Receipt.Read && slices.ContainsFunc(e.Receipt.IDs, func(x []byte) bool { return bytes.Equal(x, id) }):
				gotReceipt = true
			}
		case <-timeout:
			t.Fatalf("waiting for message %q (%v) and the receipt for %x (%v)", text, gotMsg, id, gotReceipt)
		}
	}
}
