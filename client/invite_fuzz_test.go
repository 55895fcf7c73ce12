package client

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/wire"
)

func FuzzParseBootstrap(f *testing.F) {
	b, err := proto.Marshal(&wire.BootstrapCode{RelayUrl: "ws://127.0.0.1:8080", LogKey: bytes.Repeat([]byte{1}, 32),
		Secret: bytes.Repeat([]byte{2}, 32)})
	if err != nil {
		f.Fatal(err)
	}
	seed := BootstrapPrefix + base64.RawURLEncoding.EncodeToString(b)
	if _, err := ParseBootstrap("bootstrap code:\n\n" + seed + "\n"); err != nil {
		f.Fatalf("seed: %v", err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Add(BootstrapPrefix)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseBootstrap(s)
		if err != nil {
			if !errors.Is(err, ErrBadBootstrap) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(c.LogKey) != 32 || len(c.Secret) != 32 || org.CheckRelayURL(c.RelayUrl) != nil {
			t.Fatalf("accepted %+v", c)
		}
	})
}
