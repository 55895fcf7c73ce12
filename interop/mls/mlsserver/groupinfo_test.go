package mlsserver

import (
	"testing"

	"sotto/mls"
)

// groupInfos returns real GroupInfo messages, one per supported suite.
func groupInfos(t testing.TB) map[mls.CipherSuite][]byte {
	out := map[mls.CipherSuite][]byte{}
	for v := 1; v <= 7; v++ {
		cs := mls.CipherSuite(v)
		if !cs.Supported() {
			continue
		}
		sig, err := mls.GenerateSignatureKey(cs)
		if err != nil {
			t.Fatal(err)
		}
		g, err := mls.NewGroup(cs, []byte("g"), []byte("alice"), sig)
		if err != nil {
			t.Fatal(err)
		}
		gi, err := g.GroupInfo()
		if err != nil {
			t.Fatal(err)
		}
		out[cs] = gi
	}
	return out
}

func TestGroupInfoSuite(t *testing.T) {
	gis := groupInfos(t)
	if len(gis) == 0 {
		t.Fatal("no supported suites")
	}
	for cs, gi := range gis {
		got, err := readGroupInfoHeader(gi)
		if err != nil || got.suite != cs || string(got.groupID) != "g" || got.epoch != 0 {
			t.Errorf("suite %v: got %+v, %v", cs, got, err)
		}
		kp, _, err := mls.NewKeyPackage(cs, []byte("bob"), mustSig(t, cs))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readGroupInfoHeader(kp); err == nil {
			t.Errorf("suite %v: a KeyPackage was read as a GroupInfo", cs)
		}
		for _, n := range []int{7, 8, 9, 10, 17} {
			if _, err := readGroupInfoHeader(gi[:n]); err == nil {
				t.Errorf("suite %v: a GroupInfo truncated to %d bytes was accepted", cs, n)
			}
		}
	}
}

func mustSig(t testing.TB, cs mls.CipherSuite) []byte {
	sig, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func FuzzGroupInfoHeader(f *testing.F) {
	seeds := groupInfos(f)
	if len(seeds) == 0 {
		f.Fatal("empty seed corpus")
	}
	for _, gi := range seeds {
		f.Add(gi)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := readGroupInfoHeader(b)
		if err != nil {
			return
		}
		if len(b) < 8+len(h.groupID)+8 || b[3] != 4 || uint16(h.suite) != uint16(b[6])<<8|uint16(b[7]) {
			t.Fatalf("accepted %x as %+v", b, h)
		}
	})
}

// TestGroupInfoHeaderLongID reads a group id long enough to need a
// two-byte length.
func TestGroupInfoHeaderLongID(t *testing.T) {
	cs := mls.X25519_AES128GCM_SHA256_Ed25519
	id := make([]byte, 300)
	for i := range id {
		id[i] = byte(i)
	}
	g, err := mls.NewGroup(cs, id, []byte("alice"), mustSig(t, cs))
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(p); err != nil {
		t.Fatal(err)
	}
	gi, err := g.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	h, err := readGroupInfoHeader(gi)
	if err != nil || h.suite != cs || string(h.groupID) != string(id) || h.epoch != 1 {
		t.Fatalf("got %v %x %d, %v", h.suite, h.groupID, h.epoch, err)
	}
}
