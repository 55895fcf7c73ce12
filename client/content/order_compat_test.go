package content

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// TestDeviceOrderForwardCompatible: an order of an action this client
// does not know decodes (receivers ignore it), while a malformed order of
// a known action, an order without an action and a nested order do not.
func TestDeviceOrderForwardCompatible(t *testing.T) {
	id := bytes.Repeat([]byte{1}, IDSize)
	order := func(o *DeviceOrder) *Content {
		return &Content{Version: Version, Id: id, SentAtMs: time.Now().UnixMilli(), Body: &Content_DeviceOrder{DeviceOrder: o}}
	}
	decode := func(c *Content) error {
		b, err := proto.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Pad(b)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Decode(p)
		return err
	}
	if err := decode(order(&DeviceOrder{Action: DeviceOrder_Action(99)})); err != nil {
		t.Fatalf("unknown action: %v", err)
	}
	for name, c := range map[string]*Content{
		"unspecified":         order(&DeviceOrder{}),
		"wipe without device": order(&DeviceOrder{Action: DeviceOrder_WIPE}),
		"imported bad blob":   order(&DeviceOrder{Action: DeviceOrder_HISTORY_IMPORTED, BlobId: []byte{1}}),
		"nested unknown":      NewSyncSent("bob", order(&DeviceOrder{Action: DeviceOrder_Action(99)})),
	} {
		if err := decode(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
