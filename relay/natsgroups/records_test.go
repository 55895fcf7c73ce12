package natsgroups

import (
	"bytes"
	"testing"

	"sotto/relay"
)

// The largest head the relay can make (a commit adding and removing the
// most devices it allows, with contents and GroupInfo just inline) fits
// in the server's default max_payload (1 MB), and decodes back.
func TestLargestHeadFits(t *testing.T) {
	const maxDevices = 10_000 // relay's maxGroupDevices
	devs := make([]relay.DeviceAddr, maxDevices)
	for i := range devs {
		devs[i].Account[0], devs[i].Account[1], devs[i].Device = byte(i>>8), byte(i), uint32(i)
	}
	in := bytes.Repeat([]byte{'x'}, relay.GroupInlineMax)
	e := &entry{Seq: 1 << 40, Kind: relay.GroupKindCommit, Epoch: 1 << 40, TS: 1 << 50, Sender: packAddrs(devs[:1]),
		Content: body{Size: uint64(len(in)), data: in}, Welcome: &body{Size: uint64(len(in)), data: in},
		Added: packAddrs(devs), Removed: packAddrs(devs)}
	h := head{Epoch: 1 << 40, Next: 1 << 40, Created: 1 << 50, GroupInfo: body{Size: uint64(len(in))}, Info: in, Pending: e.encode(true)}
	b := h.encode()
	t.Logf("largest head: %d bytes", len(b))
	if len(b) > 900_000 {
		t.Fatalf("largest head is %d bytes: too close to a 1 MB max_payload", len(b))
	}
	h2, err := decodeHead(b)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := decodeEntry(h2.Pending)
	if err != nil {
		t.Fatal(err)
	}
	added, err := unpackAddrs(e2.Added)
	if err != nil || len(added) != maxDevices || added[maxDevices-1] != devs[maxDevices-1] || !bytes.Equal(e2.Welcome.data, in) {
		t.Fatalf("the largest head does not decode back: %d added, %v", len(added), err)
	}
}
