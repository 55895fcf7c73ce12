package signalpeer_test

import (
	"bytes"
	"encoding/base64"
	"regexp"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"sotto/interop/signalpeer"
)

// scannableParts splits libsignal's scannable fingerprint, a CombinedFingerprints
// protobuf: version (1, the fingerprint version), local (2) and remote (3), each a
// LogicalFingerprint with its content in field 1.
func scannableParts(t *testing.T, b []byte) (version uint64, local, remote []byte) {
	t.Helper()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("scannable fingerprint: bad tag")
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				t.Fatal("scannable fingerprint: bad version")
			}
			version, b = v, b[m:]
		case (num == 2 || num == 3) && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				t.Fatal("scannable fingerprint: bad field")
			}
			b = b[m:]
			cn, ct, k := protowire.ConsumeTag(v)
			if k < 0 || cn != 1 || ct != protowire.BytesType {
				t.Fatal("scannable fingerprint: bad logical fingerprint")
			}
			c, _ := protowire.ConsumeBytes(v[k:])
			if num == 2 {
				local = c
			} else {
				remote = c
			}
		default:
			t.Fatalf("scannable fingerprint: unexpected field %d", num)
		}
	}
	return version, local, remote
}

// pqRatchetLen returns the length of the pq_ratchet field (5) of a SignalMessage
// (version byte, protobuf, 8-byte MAC), or -1 when absent.
func pqRatchetLen(t *testing.T, m signalpeer.Message) int {
	t.Helper()
	if m.Type != signalpeer.TypeSignal || len(m.Ciphertext) < 9 {
		t.Fatalf("not a SignalMessage: type %d, %d bytes", m.Type, len(m.Ciphertext))
	}
	b := m.Ciphertext[1 : len(m.Ciphertext)-8]
	n := -1
	for len(b) > 0 {
		num, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			t.Fatal("SignalMessage: bad tag")
		}
		b = b[k:]
		l := protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			t.Fatal("SignalMessage: bad field")
		}
		if num == 5 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			n = len(v)
		}
		b = b[l:]
	}
	return n
}

var sixtyDigits = regexp.MustCompile(`^[0-9]{60}$`)

func scenarioSafetyNumbers(e *env) {
	alice, bob := addr("alice"), addr("bob")
	_, err := e.a.FingerprintOf(e.ctx, alice, bob, []byte("a"), []byte("b"))
	e.wantKind(err, signalpeer.KindInvalidArgument, "fingerprint of an unknown local party")
	e.create(e.a, alice, 5)
	e.create(e.b, bob, 5)
	_, err = e.a.FingerprintOf(e.ctx, alice, bob, []byte("a"), []byte("b"))
	e.wantKind(err, signalpeer.KindNoSession, "fingerprint before bob's key is known")
	e.connect(e.a, alice, e.b, bob)
	aliceID, bobID := []byte("+14155550100"), []byte("+14155550101")
	fa, err := e.a.FingerprintOf(e.ctx, alice, bob, aliceID, bobID)
	if err != nil {
		e.t.Fatal(err)
	}
	fb, err := e.b.FingerprintOf(e.ctx, bob, alice, bobID, aliceID)
	if err != nil {
		e.t.Fatal(err)
	}
	if !sixtyDigits.MatchString(fa.Displayable) {
		e.t.Fatalf("displayable %q is not 60 digits", fa.Displayable)
	}
	if fa.Displayable != fb.Displayable {
		e.t.Fatalf("safety numbers differ: %s says %s, %s says %s", e.a.Label(), fa.Displayable, e.b.Label(), fb.Displayable)
	}
	va, la, ra := scannableParts(e.t, fa.Scannable)
	vb, lb, rb := scannableParts(e.t, fb.Scannable)
	if va != 2 || vb != 2 || len(la) != 32 || len(ra) != 32 {
		e.t.Fatalf("scannable fingerprints: versions %d, %d, lengths %d, %d", va, vb, len(la), len(ra))
	}
	if !bytes.Equal(la, rb) || !bytes.Equal(ra, lb) {
		e.t.Fatalf("scannable fingerprints do not match:\n%s: %s\n%s: %s", e.a.Label(),
			base64.StdEncoding.EncodeToString(fa.Scannable), e.b.Label(), base64.StdEncoding.EncodeToString(fb.Scannable))
	}
	// Different identifiers give a different number.
	fc, err := e.a.FingerprintOf(e.ctx, alice, bob, aliceID, []byte("+14155550102"))
	if err != nil {
		e.t.Fatal(err)
	}
	if fc.Displayable == fa.Displayable {
		e.t.Fatal("safety number ignores the remote identifier")
	}
	// Other parameters (ACI-style 16-byte identifiers, version 1, 1024 iterations)
	// agree as well.
	args := func(local, remote []byte) map[string]any {
		return map[string]any{"local_id": local, "remote_id": remote, "iterations": 1024, "version": 1}
	}
	aci1, aci2 := bytes.Repeat([]byte{0xa1}, 16), bytes.Repeat([]byte{0xb2}, 16)
	var ga, gb signalpeer.Fingerprint
	qa, qb := args(aci1, aci2), args(aci2, aci1)
	qa["name"], qa["peer"] = alice.Name, bob.Name
	qb["name"], qb["peer"] = bob.Name, alice.Name
	if err := e.a.Call(e.ctx, "fingerprint", qa, &ga); err != nil {
		e.t.Fatal(err)
	}
	if err := e.b.Call(e.ctx, "fingerprint", qb, &gb); err != nil {
		e.t.Fatal(err)
	}
	if ga.Displayable != gb.Displayable || ga.Displayable == fa.Displayable {
		e.t.Fatalf("version 1, 1024 iterations: %s says %s, %s says %s", e.a.Label(), ga.Displayable, e.b.Label(), gb.Displayable)
	}
	v1a, l1a, r1a := scannableParts(e.t, ga.Scannable)
	v1b, l1b, r1b := scannableParts(e.t, gb.Scannable)
	if v1a != 1 || v1b != 1 || !bytes.Equal(l1a, r1b) || !bytes.Equal(r1a, l1b) {
		e.t.Fatal("version 1 scannable fingerprints do not mirror each other")
	}
}
