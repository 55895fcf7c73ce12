package relay

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// FuzzParseMemberAccess feeds ORG_MEMBER_ACCESS bodies to the relay's
// parser: it accepts only a version above 0 with a key of AccessKeySize
// bytes, and refuses the rest with ErrBadRequest.
func FuzzParseMemberAccess(f *testing.F) {
	seeds := []*wire.MemberAccess{
		{Version: 1, IssuedMs: 5, AccessKey: make([]byte, wire.AccessKeySize)},
		{Version: 0, AccessKey: make([]byte, wire.AccessKeySize)},
		{Version: 3, AccessKey: []byte{1, 2, 3}},
		{},
	}
	for _, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMemberAccess(b)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if m.Version == 0 || len(m.AccessKey) != wire.AccessKeySize {
			t.Fatalf("accepted %v", m)
		}
	})
}
