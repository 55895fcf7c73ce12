package relay_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"sotto/relay"
	"sotto/transparency"
	"sotto/wire"
	"sotto/witness"
)

// TestKeyLogWitness: a relay with a witness (the real one, on loopback)
// submits its heads after the log grows and serves the cosignature with
// every head of the same tree, and the newest witnessed head with the
// live one.
func TestKeyLogWitness(t *testing.T) {
	_, wkey, _ := ed25519.GenerateKey(rand.Reader)
	var w *witness.Witness
	l := startLogRelay(t, nil, func(cfg *relay.Config) {
		var err error
		w, err = witness.New(witness.Config{Dir: t.TempDir(), Key: wkey, LogKey: cfg.LogKey.Public().(ed25519.PublicKey), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ws := httptest.NewServer(w.Handler())
		t.Cleanup(ws.Close)
		cfg.Witness = &witness.Client{URL: ws.URL, HTTP: ws.Client()}
	})
	alice, bob := l.dial(t), l.dial(t)
	alice.enroll(l, "alice", []byte("alice identity key"))
	bob.enroll(l, "bob", []byte("bob identity key"))

	// waitWitnessed asks for the head until it comes co-signed.
	waitWitnessed := func(size uint64) *wire.TransparencyHead {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := alice.do(&wire.Request{Body: &wire.Request_TransparencyHead{TransparencyHead: &wire.TransparencyHeadRequest{}}}).GetTransparencyHead()
			head, err := transparency.VerifyHead(l.pub, r.GetSignedHead())
			if err != nil {
				t.Fatal(err)
			}
			if ok, bad := transparency.FindCosignature(w.PublicKey(), l.pub, head.Size, head.Root, r.GetCosignatures()); bad > 0 {
				t.Fatal("a cosignature that does not verify")
			} else if ok && head.Size == size {
				return r
			}
			if time.Now().After(deadline) {
				t.Fatalf("no co-signed head of size %d", size)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	r := waitWitnessed(2)
	if string(r.WitnessedHead) != string(r.SignedHead) {
		t.Fatal("the witnessed head is not the co-signed live head")
	}
	// A lookup's proof carries the cosignature of its head.
	p := alice.do(&wire.Request{Body: &wire.Request_GetIdentity{GetIdentity: &wire.GetIdentityRequest{Username: "bob"}}}).GetGetIdentity().GetTransparency()
	head := checkProof(t, l.pub, p, "bob", []byte("bob identity key"))
	if ok, _ := transparency.FindCosignature(w.PublicKey(), l.pub, head.Size, head.Root, p.GetCosignatures()); !ok {
		t.Fatal("the lookup's head came without its cosignature")
	}

	// The log grows: until the witness co-signed the new tree, the answer
	// still carries the newest witnessed head; then the new one.
	l.dial(t).enroll(l, "carol", []byte("carol identity key"))
	r = alice.do(&wire.Request{Body: &wire.Request_TransparencyHead{TransparencyHead: &wire.TransparencyHeadRequest{}}}).GetTransparencyHead()
	wh, err := transparency.VerifyHead(l.pub, r.GetWitnessedHead())
	if err != nil || wh.Size < 2 {
		t.Fatalf("witnessed head %+v %v", wh, err)
	}
	if ok, _ := transparency.FindCosignature(w.PublicKey(), l.pub, wh.Size, wh.Root, r.GetWitnessedCosignatures()); !ok {
		t.Fatal("the witnessed head came without its cosignature")
	}
	waitWitnessed(3)
}
