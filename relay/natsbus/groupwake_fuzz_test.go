package natsbus

import (
	"bytes"
	"encoding/binary"
	"testing"

	"sotto/relay"
)

// FuzzParseGroupWake: any bytes from the NATS subject are parsed without
// panicking, and a wake-up accepted is exactly what NotifyGroup would
// publish for what it decoded.
func FuzzParseGroupWake(f *testing.F) {
	valid := append(append(bytes.Repeat([]byte{7}, 16), 0, 0, 0, 3, 1), "group-id"...)
	seeds := [][]byte{valid, valid[:21], append(valid[:20:20], 2, 'g'), append(bytes.Clone(valid), bytes.Repeat([]byte("x"), relay.MaxGroupID)...), nil}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		group, sender, commit, ok := parseGroupWake(b)
		if !ok {
			return
		}
		if len(group) == 0 || len(group) > relay.MaxGroupID {
			t.Fatalf("accepted a group id of %d bytes", len(group))
		}
		enc := append(sender.Account[:], binary.BigEndian.AppendUint32(nil, sender.Device)...)
		flag := byte(0)
		if commit {
			flag = 1
		}
		if enc = append(append(enc, flag), group...); !bytes.Equal(enc, b) {
			t.Fatalf("%x decoded and encoded again is %x", b, enc)
		}
	})
}

func TestParseGroupWake(t *testing.T) {
	b := append(append(bytes.Repeat([]byte{7}, 16), 0, 0, 0, 3, 1), "g1"...)
	group, sender, commit, ok := parseGroupWake(b)
	if !ok || string(group) != "g1" || sender.Device != 3 || sender.Account[15] != 7 || !commit {
		t.Fatalf("%q %v %v %v", group, sender, commit, ok)
	}
	for _, bad := range [][]byte{b[:21], append(b[:20:20], 2, 'g'), append(b, bytes.Repeat([]byte("x"), relay.MaxGroupID)...)} {
		if _, _, _, ok := parseGroupWake(bad); ok {
			t.Fatalf("accepted %x", bad)
		}
	}
}
