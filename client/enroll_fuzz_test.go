package client

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"

	"sotto/client/linktransfer"
	"sotto/client/sealedsender"
	"sotto/signal/session"
)

// provisioningSeeds returns real link approvals as ApproveLink encodes
// them, and near misses.
func provisioningSeeds(t testing.TB) [][]byte {
	identity, err := session.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	acct := bytes.Repeat([]byte{7}, provisioningAccountID)
	rts := &roots{OrgKey: bytes.Repeat([]byte{9}, 32), OrgName: "Acme", Certificate: []byte{1, 2, 3}, PolicyMin: 2}
	var seeds [][]byte
	for _, pm := range []provisioning{
		{Username: "alice", AccountID: acct, Identity: identity.Serialize(), LinkToken: "T0K3N-abcdefghijklmnopqrstuvwxyz0123456789", Roots: rts},
		{Username: "bob.smith", AccountID: acct, Identity: identity.Serialize(), LinkToken: "x", Roots: rts},
		{Username: "dave", AccountID: acct, Identity: identity.Serialize(), LinkToken: "x", Roots: rts, History: &historyPointer{
			BlobID: bytes.Repeat([]byte{1}, 16), Key: bytes.Repeat([]byte{2}, 32), Digest: bytes.Repeat([]byte{3}, 32), Size: 1000, ChunkSize: 64 << 10}},
		{Username: "erin", AccountID: acct, Identity: identity.Serialize(), LinkToken: "x", Roots: rts, Sealed: &sealedsender.LinkState{
			ProfileKey: bytes.Repeat([]byte{4}, 32), Epoch: 3, Revocations: []sealedsender.LinkRevocation{{User: "mallory", Epoch: 2, Revoked: true}, {User: "eve", Epoch: 3}}}},
		{Username: "erin", AccountID: acct, Identity: identity.Serialize(), LinkToken: "x", Roots: rts, Sealed: &sealedsender.LinkState{
			ProfileKey: bytes.Repeat([]byte{4}, 32), Epoch: 1, Revocations: []sealedsender.LinkRevocation{{User: "mallory", Epoch: 2, Revoked: true}}}},
		{Username: "dave", AccountID: acct, Identity: identity.Serialize(), LinkToken: "x", History: &historyPointer{
			BlobID: bytes.Repeat([]byte{1}, 15), Key: bytes.Repeat([]byte{2}, 32), Digest: bytes.Repeat([]byte{3}, 32), Size: 1000, ChunkSize: 64 << 10}},
		{Username: "Alice ", AccountID: acct, Identity: identity.Serialize(), LinkToken: "x"},
		{Username: "carol", AccountID: acct[:15], Identity: identity.Serialize(), LinkToken: "x"},
		{Username: "carol", AccountID: acct, Identity: identity.Serialize()[1:], LinkToken: "x"},
		{Username: "carol", AccountID: acct, Identity: identity.Serialize(), LinkToken: "x"}, // no roots
		{Username: "carol", AccountID: acct, Identity: identity.Serialize(), LinkToken: "x", Roots: &roots{OrgKey: []byte{1}, Certificate: []byte{1}}},
	} {
		b, err := json.Marshal(&pm)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds, []byte(`{}`), []byte(`null`), []byte(`{"username":1}`), []byte(`[`))
}

func FuzzParseProvisioning(f *testing.F) {
	seeds := provisioningSeeds(f)
	// The seeds must load: the first four are well-formed approvals.
	for i, s := range seeds {
		_, _, err := parseProvisioning(bytes.Clone(s))
		if ok := i < 4; ok != (err == nil) {
			f.Fatalf("seed %d: %v", i, err)
		}
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pm, identity, err := parseProvisioning(b)
		if err != nil {
			if !errors.Is(err, ErrBadProvisioning) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(pm.Identity, identity.Serialize()) {
			t.Fatal("identity not kept in its canonical encoding")
		}
		// What was accepted encodes to an approval that parses the same.
		again, err := json.Marshal(pm)
		if err != nil {
			t.Fatal(err)
		}
		pm2, identity2, err := parseProvisioning(again)
		if err != nil {
			t.Fatalf("re-encoded approval refused: %v", err)
		}
		if pm2.Username != pm.Username || !bytes.Equal(pm2.AccountID, pm.AccountID) || pm2.LinkToken != pm.LinkToken ||
			!bytes.Equal(pm2.Roots.OrgKey, pm.Roots.OrgKey) || !bytes.Equal(pm2.Roots.Certificate, pm.Roots.Certificate) || !identity2.PublicKey().Equal(identity.PublicKey()) ||
			(pm.History == nil) != (pm2.History == nil) || (pm.Sealed == nil) != (pm2.Sealed == nil) || (pm.History != nil && !bytes.Equal(pm.History.BlobID, pm2.History.BlobID)) {
			t.Fatalf("round trip changed the approval")
		}
	})
}

// FuzzOpenProvisioning feeds the sealed message as it arrives from the
// relay: anything but a real approval sealed to this device's key is
// refused with ErrBadProvisioning.
func FuzzOpenProvisioning(f *testing.F) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	const address = "i95RwCE2JpyqwcUkqnqxPg"
	seeds := provisioningSeeds(f)
	sealed, err := linktransfer.Seal(priv.PublicKey(), address, seeds[0])
	if err != nil {
		f.Fatal(err)
	}
	if _, _, err := openProvisioning(priv, address, sealed); err != nil {
		f.Fatalf("a real approval does not open: %v", err)
	}
	if _, _, err := openProvisioning(priv, address+"x", sealed); !errors.Is(err, ErrBadProvisioning) {
		f.Fatalf("opened for another address: %v", err)
	}
	f.Add(sealed)
	f.Add(sealed[:32])
	f.Add(append(bytes.Clone(sealed), 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pm, _, err := openProvisioning(priv, address, b)
		if err != nil {
			if !errors.Is(err, ErrBadProvisioning) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(b, sealed) || pm.Username != "alice" {
			t.Fatalf("opened something that is not the sealed seed (%d bytes)", len(b))
		}
	})
}
