package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"sotto/relay"
)

// RunSealed checks what sealed sender needs of a store: access keys kept
// per account (relay.AccessKeyStore), and envelopes stored and fetched with
// no sender at all.
func RunSealed(t *testing.T, open Open) {
	ctx := context.Background()
	s, reopen := open(t)
	ks, ok := s.(relay.AccessKeyStore)
	if !ok {
		s.Close()
		t.Fatalf("%T does not implement relay.AccessKeyStore", s)
	}
	a, b := addr(1, 1).Account, addr(2, 1).Account
	if _, err := ks.AccessKey(ctx, a); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("no key yet: %v", err)
	}
	k1 := bytes.Repeat([]byte{1}, 16)
	k2 := bytes.Repeat([]byte{2}, 16)
	if err := ks.SetAccessKey(ctx, a, k1); err != nil {
		t.Fatal(err)
	}
	if err := ks.SetAccessKey(ctx, b, k2); err != nil {
		t.Fatal(err)
	}
	if got, err := ks.AccessKey(ctx, a); err != nil || !bytes.Equal(got, k1) {
		t.Fatalf("key of a: %x %v", got, err)
	}
	// Replacing a key (a new profile key) keeps one row.
	if err := ks.SetAccessKey(ctx, a, k2); err != nil {
		t.Fatal(err)
	}
	if got, err := ks.AccessKey(ctx, a); err != nil || !bytes.Equal(got, k2) {
		t.Fatalf("replaced key of a: %x %v", got, err)
	}

	// A sealed send: the zero sender, no sender name or device.
	to := addr(2, 1)
	sd := newSend(relay.DeviceAddr{}, "sealed-1", t0, to)
	for i := range sd.Envelopes {
		sd.Envelopes[i].Sender, sd.Envelopes[i].SenderDevice = "", 0
	}
	res, err := s.Append(ctx, sd)
	if err != nil || res.Duplicate {
		t.Fatalf("append sealed: %+v %v", res, err)
	}
	if res, err = s.Append(ctx, sd); err != nil || !res.Duplicate {
		t.Fatalf("append sealed again: %+v %v", res, err)
	}
	got := fetchAll(t, s, to)
	if len(got) != 1 || got[0].Sender != "" || got[0].SenderDevice != 0 || !bytes.Equal(got[0].Content, sd.Envelopes[0].Content) {
		t.Fatalf("fetched sealed envelope: %+v", got)
	}
	if reopen == nil {
		s.Close()
		return
	}
	s.Close()
	s2 := reopen()
	defer s2.Close()
	if got, err := s2.(relay.AccessKeyStore).AccessKey(ctx, b); err != nil || !bytes.Equal(got, k2) {
		t.Fatalf("key of b after reopen: %x %v", got, err)
	}
}
