package natsgroups

import (
	"bytes"
	"testing"

	"sotto/relay"
)

// FuzzDecodeEntry feeds arbitrary bytes to the decoders of stored entries
// and heads (what the store reads back from JetStream): it must not panic, and
// what it accepts must encode back to an entry that decodes the same.
func FuzzDecodeEntry(f *testing.F) {
	var a relay.DeviceAddr
	a.Account[0], a.Device = 7, 2
	send := &entry{Seq: 5, Kind: relay.GroupKindMessage, TS: 1, Sender: packAddrs([]relay.DeviceAddr{a}), MsgID: []byte("m"),
		Content: body{Size: 5, data: []byte("hello")}}
	commit := &entry{Seq: 6, Kind: relay.GroupKindCommit, Epoch: 3, Sender: packAddrs([]relay.DeviceAddr{a}),
		Content: body{Blob: "00ff", Size: 1 << 20}, Welcome: &body{Size: 2, data: []byte("wl")},
		Added: packAddrs([]relay.DeviceAddr{a, a}), Removed: packAddrs([]relay.DeviceAddr{a}), External: true}
	for _, e := range []*entry{send, commit} {
		f.Add(e.encode(true))
		f.Add(e.encode(false))
	}
	f.Add(commit.encode(true)[:10])
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := decodeHead(b); err == nil {
			decodeHead(h.encode())
		}
		e, err := decodeEntry(b)
		if err != nil {
			return
		}
		e.sender()
		unpackAddrs(e.Added)
		again, err := decodeEntry(e.encode(true))
		if err != nil {
			t.Fatalf("an accepted entry does not decode after encoding: %v", err)
		}
		if !bytes.Equal(again.Content.data, e.Content.data) || again.Seq != e.Seq || again.Content.Size != e.Content.Size {
			t.Fatalf("round trip changed the entry: %+v then %+v", e, again)
		}
	})
}
