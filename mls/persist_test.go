package mls

import (
	"bytes"
	"errors"
	"testing"
)

// restore round-trips a group through MarshalBinary and UnmarshalGroup.
func restore(t testing.TB, g *Group) *Group {
	t.Helper()
	b, err := g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r, err := UnmarshalGroup(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatal("state does not re-encode identically")
	}
	return r
}

// Members restored from storage at every step keep working: proposals
// pending, late messages, a pending update key, PSKs.
func TestPersistence(t *testing.T) {
	for _, cs := range supportedSuites {
		t.Run(cs.String(), func(t *testing.T) {
			sig, _ := GenerateSignatureKey(cs)
			ag, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
			alice := &client{name: "alice", g: restore(t, ag)}
			bob, carol := newClient(t, cs, "bob"), newClient(t, cs, "carol")
			p, err := alice.g.Commit(CommitOptions{Add: [][]byte{bob.kp, carol.kp}})
			if err != nil {
				t.Fatal(err)
			}
			alice.g.Apply(p)
			for _, c := range []*client{bob, carol} {
				if c.g, err = Join(p.Welcome, c.kp, c.keys, nil); err != nil {
					t.Fatal(err)
				}
				c.g = restore(t, c.g)
			}
			alice.g.AddExternalPSK([]byte("id"), []byte("psk"))
			bob.g.AddExternalPSK([]byte("id"), []byte("psk"))
			carol.g.AddExternalPSK([]byte("id"), []byte("psk"))
			upd, err := bob.g.ProposeUpdate()
			if err != nil {
				t.Fatal(err)
			}
			bob.g = restore(t, bob.g)
			late, _ := carol.g.Seal([]byte("late"))
			for _, c := range []*client{alice, carol} {
				if _, err := c.g.Handle(upd); err != nil {
					t.Fatal(err)
				}
				c.g = restore(t, c.g)
			}
			p, err = alice.g.Commit(CommitOptions{PSKs: [][]byte{[]byte("id")}})
			if err != nil {
				t.Fatal(err)
			}
			alice.g.Apply(p)
			for _, c := range []*client{bob, carol} {
				if _, err := c.g.Handle(p.Commit); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				c.g = restore(t, c.g)
			}
			alice.g = restore(t, alice.g)
			sameEpoch(t, alice, bob, carol)
			if r, err := restore(t, bob.g).Handle(late); err != nil || string(r.Data) != "late" {
				t.Fatalf("late message after restore: %v", err)
			}
			m, _ := bob.g.Seal([]byte("after restore"))
			if r, err := alice.g.Handle(m); err != nil || string(r.Data) != "after restore" {
				t.Fatalf("alice: %v", err)
			}
		})
	}
}

func TestUnmarshalGroupRejectsGarbage(t *testing.T) {
	for _, b := range [][]byte{nil, {0}, {0, 2, 0, 1}, {0, 1, 0, 4}} {
		if _, err := UnmarshalGroup(b); err == nil {
			t.Errorf("%x accepted", b)
		} else if !errors.Is(err, ErrDecode) && !errors.Is(err, ErrUnsupportedCipherSuite) {
			t.Errorf("%x: %v", b, err)
		}
	}
}

// FuzzUnmarshalGroup: a corrupted stored state never panics, neither when
// decoded nor when the restored group is used.
func FuzzUnmarshalGroup(f *testing.F) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	ag, err := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	if err != nil {
		f.Fatal(err)
	}
	bob := newClient(f, cs, "bob")
	p, err := ag.Commit(CommitOptions{Add: [][]byte{bob.kp}})
	if err != nil {
		f.Fatal(err)
	}
	ag.Apply(p)
	bg, err := Join(p.Welcome, bob.kp, bob.keys, nil)
	if err != nil {
		f.Fatal(err)
	}
	msg, _ := ag.Seal([]byte("m"))
	state, err := bg.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(state)
	f.Fuzz(func(t *testing.T, in []byte) {
		g, err := UnmarshalGroup(in)
		if err != nil {
			return
		}
		g.Handle(msg)
		g.Seal([]byte("x"))
		g.Commit(CommitOptions{})
		g.MarshalBinary()
	})
}

func TestPeek(t *testing.T) {
	cs := X25519_AES128GCM_SHA256_Ed25519
	sig, _ := GenerateSignatureKey(cs)
	g, _ := NewGroup(cs, []byte("peek"), []byte("alice"), sig)
	bob := newClient(t, cs, "bob")
	p, _ := g.Commit(CommitOptions{Add: [][]byte{bob.kp}})
	info, err := Peek(p.Commit)
	if err != nil || info.WireFormat != WirePublicMessage || info.Content != CommitContent || info.Epoch != 0 || string(info.GroupID) != "peek" {
		t.Fatalf("commit: %+v %v", info, err)
	}
	g.Apply(p)
	m, _ := g.Seal([]byte("x"))
	if info, err := Peek(m); err != nil || info.WireFormat != WirePrivateMessage || info.Content != ApplicationContent || info.Epoch != 1 {
		t.Fatalf("application: %+v %v", info, err)
	}
	m, _ = g.SealWith([]byte("x"), SealOptions{AuthenticatedData: []byte("aad")})
	if info, err := Peek(m); err != nil || string(info.AuthenticatedData) != "aad" {
		t.Fatalf("authenticated data: %+v %v", info, err)
	}
	if info, err := Peek(p.Welcome); err != nil || info.WireFormat != WireWelcome || info.Content != 0 {
		t.Fatalf("welcome: %+v %v", info, err)
	}
	if _, err := Peek([]byte{0, 1, 0, 9}); !errors.Is(err, ErrDecode) {
		t.Fatalf("bad wire format: %v", err)
	}
}

func TestPendingCommitPersistence(t *testing.T) {
	cs := P256_AES128GCM_SHA256_P256
	sig, _ := GenerateSignatureKey(cs)
	ag, _ := NewGroup(cs, []byte("g"), []byte("alice"), sig)
	bob := newClient(t, cs, "bob")
	p, err := ag.Commit(CommitOptions{Add: [][]byte{bob.kp}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The process restarts: group and pending commit come from storage.
	ag = restore(t, ag)
	p2, err := UnmarshalPendingCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := ag.Apply(p2); err != nil {
		t.Fatal(err)
	}
	bg, err := Join(p2.Welcome, bob.kp, bob.keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ag.EpochAuthenticator(), bg.EpochAuthenticator()) {
		t.Fatal("restored pending commit leads elsewhere")
	}
	if _, err := p2.MarshalBinary(); err == nil {
		t.Fatal("applied pending commit marshalled")
	}
	if _, err := UnmarshalPendingCommit(b[:len(b)-1]); !errors.Is(err, ErrDecode) {
		t.Fatalf("truncated: %v", err)
	}
}
