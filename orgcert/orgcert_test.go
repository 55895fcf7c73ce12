package orgcert

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

type chain struct {
	orgPub   ed25519.PublicKey
	orgPriv  ed25519.PrivateKey
	grant    *wire.OrgDocument
	invPriv  ed25519.PrivateKey
	identity []byte
	cert     []byte
}

func newChain(t testing.TB, user string) *chain {
	t.Helper()
	c := &chain{identity: bytes.Repeat([]byte{5}, 33)}
	c.orgPub, c.orgPriv, _ = ed25519.GenerateKey(rand.Reader)
	invPub, invPriv, _ := ed25519.GenerateKey(rand.Reader)
	c.invPriv = invPriv
	h := HashSeatToken([]byte("seat token"))
	now := time.Now()
	var err error
	c.grant, err = SignGrant(c.orgPriv, &Grant{Username: user, InvitationKey: invPub, SeatTokenHash: h[:],
		IssuedMs: now.UnixMilli(), ExpiresMs: now.Add(time.Hour).UnixMilli(), OrgName: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	if c.cert, err = Issue(c.grant, invPriv, c.identity, now); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestChain(t *testing.T) {
	c := newChain(t, "alice")
	v, err := Verify(c.orgPub, c.cert, "alice", c.identity)
	if err != nil || v.Username != "alice" || v.OrgName != "Acme" {
		t.Fatalf("honest chain: %+v %v", v, err)
	}
	otherOrg, _, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name string
		org  ed25519.PublicKey
		cert []byte
		user string
		key  []byte
		want error
	}{
		{"another org key", otherOrg, c.cert, "alice", c.identity, ErrBadSignature},
		{"another user", c.orgPub, c.cert, "mallory", c.identity, ErrWrongIdentity},
		{"another identity key", c.orgPub, c.cert, "alice", bytes.Repeat([]byte{6}, 33), ErrWrongIdentity},
		{"no certificate", c.orgPub, nil, "alice", c.identity, ErrMalformed},
		{"garbage", c.orgPub, []byte{1, 2, 3}, "alice", c.identity, ErrMalformed},
	} {
		if _, err := Verify(tc.org, tc.cert, tc.user, tc.key); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A certificate the relay makes for its own key with its own invitation
	// key, around the real grant, does not verify.
	_, relayInv, _ := ed25519.GenerateKey(rand.Reader)
	forged, err := Issue(c.grant, relayInv, c.identity, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(c.orgPub, forged, "alice", c.identity); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged certificate: %v", err)
	}
	// Issued after the grant expired.
	late, _ := Issue(c.grant, c.invPriv, c.identity, time.Now().Add(2*time.Hour))
	if _, err := Verify(c.orgPub, late, "alice", c.identity); !errors.Is(err, ErrExpired) {
		t.Fatalf("late certificate: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	c := newChain(f, "alice")
	if _, err := Verify(c.orgPub, c.cert, "alice", c.identity); err != nil {
		f.Fatalf("seed: %v", err)
	}
	f.Add(c.cert)
	f.Add(c.cert[:len(c.cert)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Verify(c.orgPub, b, "alice", c.identity)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrWrongIdentity) && !errors.Is(err, ErrExpired) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// Whatever verifies names alice and her key under this org's grant.
		if v.Username != "alice" || !proto.Equal(v.GrantDoc, c.grant) && v.Grant.Username != "alice" {
			t.Fatalf("verified %+v", v)
		}
	})
}

// BenchmarkVerify is what a client pays per served key (first contact, key
// change, refresh): two Ed25519 verifications and two decodings.
func BenchmarkVerify(b *testing.B) {
	c := newChain(b, "alice")
	for b.Loop() {
		if _, err := Verify(c.orgPub, c.cert, "alice", c.identity); err != nil {
			b.Fatal(err)
		}
	}
}
