package org

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"
)

func mint(t testing.TB) (*Invitation, string) {
	t.Helper()
	_, orgKey, _ := ed25519.GenerateKey(rand.Reader)
	logPub, _, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	inv, _, err := MintInvitation(orgKey, MintParams{Username: "bob", Expires: now.Add(time.Hour), RelayURL: "wss://relay.example.org",
		OrgName: "Acme", LogKey: logPub, PolicyVersion: 3, NoticeSeq: 7, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	text, err := inv.Text()
	if err != nil {
		t.Fatal(err)
	}
	return inv, text
}

func TestInvitationRoundTrip(t *testing.T) {
	inv, text := mint(t)
	o, err := ParseInvitation("Here is your invitation:\n\n"+text+"\n\nWelcome!", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if o.Username() != "bob" || o.OrgName != "Acme" || o.PolicyVersion != 3 || o.NoticeSeq != 7 || o.RelayUrl != inv.RelayUrl {
		t.Fatalf("parsed %+v", o.Invitation)
	}
	if _, err := ParseInvitation(text, time.Now().Add(2*time.Hour)); !errors.Is(err, ErrBadInvitation) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	// Each part must hold with the others.
	for name, change := range map[string]func(*Invitation){
		"another org key":        func(i *Invitation) { i.OrgKey = append([]byte(nil), i.LogKey...) },
		"another invitation key": func(i *Invitation) { i.InvitationSeed[0] ^= 1 },
		"another seat":           func(i *Invitation) { i.SeatToken[0] ^= 1 },
		"another org name":       func(i *Invitation) { i.OrgName = "Evil" },
		"a plaintext relay URL":  func(i *Invitation) { i.RelayUrl = "http://relay" },
		"version 2":              func(i *Invitation) { i.Version = 2 },
	} {
		bad, _ := mint(t)
		change(bad)
		text, _ := bad.Text()
		if _, err := ParseInvitation(text, time.Now()); !errors.Is(err, ErrBadInvitation) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzParseInvitation(f *testing.F) {
	_, text := mint(f)
	if _, err := ParseInvitation(text, time.Now()); err != nil {
		f.Fatalf("seed: %v", err)
	}
	f.Add(text)
	f.Add(text[:len(text)/2])
	f.Add(InvitationPrefix)
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseInvitation(s, time.Now())
		if err != nil {
			if !errors.Is(err, ErrBadInvitation) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// What parses re-encodes to an invitation that parses the same.
		again, err := o.Text()
		if err != nil {
			t.Fatal(err)
		}
		o2, err := ParseInvitation(again, time.Now())
		if err != nil || o2.Username() != o.Username() {
			t.Fatalf("round trip: %v", err)
		}
	})
}
