package release

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"sotto/transparency"
)

// testLog is a release log with its keys, as the project and the
// organization's witness would run it.
type testLog struct {
	releasePub  ed25519.PublicKey
	releaseKey  ed25519.PrivateKey
	witnessPub  ed25519.PublicKey
	witnessKey  ed25519.PrivateKey
	leaves      [][sha256.Size]byte
	manifests   map[string][]byte
	checkpoint  []byte
	noWitnessCp []byte
}

func newTestLog(t *testing.T) *testLog {
	l := &testLog{manifests: map[string][]byte{}}
	l.releasePub, l.releaseKey, _ = ed25519.GenerateKey(nil)
	l.witnessPub, l.witnessKey, _ = ed25519.GenerateKey(nil)
	return l
}

// publish signs a manifest of version; logged appends it and re-signs and
// witnesses the head.
func (l *testLog) publish(t *testing.T, version string, logged bool) Candidate {
	t.Helper()
	enc, err := testManifest(version).Encode()
	if err != nil {
		t.Fatal(err)
	}
	l.manifests[version] = enc
	if logged {
		l.leaves = append(l.leaves, Hash(enc))
	}
	root, err := Root(l.leaves)
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(len(l.leaves))
	head := transparency.SignHead(l.releaseKey, size, root, 1_700_000_000_000+int64(size))
	cosig := transparency.Cosign(l.witnessKey, l.releasePub, size, root, 1_700_000_000+size)
	l.checkpoint = (&Checkpoint{Head: head, Cosignatures: [][]byte{cosig.Encode()}}).Encode()
	l.noWitnessCp = (&Checkpoint{Head: head}).Encode()
	return Candidate{Manifest: enc, Signature: Sign(l.releaseKey, enc), Leaves: EncodeLeaves(l.leaves), Checkpoint: l.checkpoint}
}

func (l *testLog) policy(running string, approved ...[]byte) *Policy {
	p := &Policy{ReleaseKey: l.releasePub, WitnessKey: l.witnessPub, Running: running, Platform: "linux/amd64"}
	for _, a := range approved {
		p.Approved = append(p.Approved, Hash(a))
	}
	return p
}

func TestPolicyAcceptsApprovedLoggedNewer(t *testing.T) {
	l := newTestLog(t)
	l.publish(t, "v1.0.0", true)
	c := l.publish(t, "v1.1.0", true)
	m, pos, err := l.policy("v1.0.0", c.Manifest).Check(c)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "v1.1.0" || pos.Index != 1 || pos.TreeSize != 2 || pos.ManifestHash != Hash(c.Manifest) {
		t.Fatalf("got %s at %+v", m.Version, pos)
	}
}

// Each of these is an attack on one check; each test fails if that check
// is switched off in Policy.Check.
func TestPolicyRefuses(t *testing.T) {
	l := newTestLog(t)
	old := l.publish(t, "v1.0.0", true)
	good := l.publish(t, "v1.1.0", true)
	unlogged := l.publish(t, "v1.2.0", false) // signed and approved, never logged
	_, forgedKey, _ := ed25519.GenerateKey(nil)

	other := good
	otherPlat := testManifest("v1.1.0")
	otherPlat.Platform = "linux/arm64"
	other.Manifest, _ = otherPlat.Encode()
	other.Signature = Sign(l.releaseKey, other.Manifest)

	tooNew := testManifest("v3.0.0")
	tooNew.MinVersion = "v2.0.0"
	tooNewEnc, _ := tooNew.Encode()
	l.leaves = append(l.leaves, Hash(tooNewEnc))
	tooNewC := l.publish(t, "v1.1.0", false) // re-sign the head over the longer log
	tooNewC.Manifest, tooNewC.Signature = tooNewEnc, Sign(l.releaseKey, tooNewEnc)

	for _, tc := range []struct {
		name   string
		c      Candidate
		p      *Policy
		target error
	}{
		{"signed and logged, not approved", good, l.policy("v1.0.0"), ErrNotApproved},
		{"approved another release", good, l.policy("v1.0.0", old.Manifest), ErrNotApproved},
		{"approved and signed, not logged", unlogged, l.policy("v1.0.0", unlogged.Manifest), ErrNotLogged},
		{"rollback", old, l.policy("v1.1.0", old.Manifest), ErrRollback},
		{"same version", good, l.policy("v1.1.0", good.Manifest), ErrRollback},
		{"forged manifest signature", Candidate{good.Manifest, Sign(forgedKey, good.Manifest), good.Leaves, good.Checkpoint}, l.policy("v1.0.0", good.Manifest), ErrBadSignature},
		{"head without the witness", Candidate{good.Manifest, good.Signature, good.Leaves, l.noWitnessCp}, l.policy("v1.0.0", good.Manifest), ErrNotWitness},
		{"head signed by another key", Candidate{good.Manifest, good.Signature, good.Leaves, forgeHead(t, forgedKey, l, good.Leaves)}, l.policy("v1.0.0", good.Manifest), ErrNotLogged},
		{"leaves that do not match the head", Candidate{good.Manifest, good.Signature, good.Leaves[:32], good.Checkpoint}, l.policy("v1.0.0", good.Manifest), ErrNotLogged},
		{"another platform", other, l.policy("v1.0.0", other.Manifest), ErrPlatform},
		{"running below the minimum", tooNewC, l.policy("v1.0.0", tooNewEnc), ErrTooOld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := tc.p.Check(tc.c); !errors.Is(err, tc.target) {
				t.Fatalf("Check = %v, want %v", err, tc.target)
			}
		})
	}
}

// forgeHead signs a head over the leaves with key and has the real witness
// co-sign it: the witness does not know the release key, the device does.
func forgeHead(t *testing.T, key ed25519.PrivateKey, l *testLog, leaves []byte) []byte {
	hs, err := ParseLeaves(leaves)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := Root(hs)
	head := transparency.SignHead(key, uint64(len(hs)), root, 1)
	cosig := transparency.Cosign(l.witnessKey, key.Public().(ed25519.PublicKey), uint64(len(hs)), root, 1)
	return (&Checkpoint{Head: head, Cosignatures: [][]byte{cosig.Encode()}}).Encode()
}

func TestCheckpointRoundTrip(t *testing.T) {
	l := newTestLog(t)
	c := l.publish(t, "v1.0.0", true)
	cp, err := ParseCheckpoint(c.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if string(cp.Encode()) != string(c.Checkpoint) {
		t.Fatal("checkpoint does not round-trip")
	}
	for _, bad := range []string{"", "head\n", "head !!\n", "cosignature AAAA\n", string(c.Checkpoint) + "head AAAA\n", string(c.Checkpoint[:len(c.Checkpoint)-1])} {
		if _, err := ParseCheckpoint([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseCheckpoint(%q) = %v", bad, err)
		}
	}
	if _, err := ParseLeaves(make([]byte, 33)); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseLeaves(33 bytes) = %v", err)
	}
}
