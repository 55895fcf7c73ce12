package session_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"log"
	"time"

	"sotto/signal/session"
)

// publish generates a device's prekeys, stores their private halves and
// returns the bundle a relay would serve to others.
func publish(store *session.MemoryStore, id *session.IdentityKeyPair, regID uint32, now time.Time) *session.PreKeyBundle {
	ctx := context.Background()
	pre, err := session.GeneratePreKeys(rand.Reader, 1, 1)
	if err != nil {
		log.Fatal(err)
	}
	signed, err := session.GenerateSignedPreKey(rand.Reader, id, 1, now)
	if err != nil {
		log.Fatal(err)
	}
	kyber, err := session.GenerateKyberPreKey(rand.Reader, id, 1, now)
	if err != nil {
		log.Fatal(err)
	}
	_ = store.StorePreKey(ctx, pre[0].ID(), pre[0])
	_ = store.StoreSignedPreKey(ctx, signed.ID(), signed)
	_ = store.StoreKyberPreKey(ctx, kyber.ID(), kyber, true) // last resort
	return &session.PreKeyBundle{
		RegistrationID: regID, DeviceID: 1,
		HasPreKey: true, PreKeyID: pre[0].ID(), PreKey: pre[0].PublicKey(),
		SignedPreKeyID: signed.ID(), SignedPreKey: signed.PublicKey(), SignedPreKeySignature: signed.Signature(),
		KyberPreKeyID: kyber.ID(), KyberPreKey: kyber.PublicKey(), KyberPreKeySignature: kyber.Signature(),
		IdentityKey: id.PublicKey().Serialize(),
	}
}

// Alice starts a session from Bob's prekey bundle, and they exchange
// messages both ways.
func ExampleEncrypt() {
	ctx := context.Background()
	now := time.Now()
	aliceID, _ := session.GenerateIdentityKeyPair(rand.Reader)
	bobID, _ := session.GenerateIdentityKeyPair(rand.Reader)
	alice := session.NewMemoryStore(aliceID, 1001)
	bob := session.NewMemoryStore(bobID, 2002)
	aliceAddr := session.Address{Name: "alice", DeviceID: 1}
	bobAddr := session.Address{Name: "bob", DeviceID: 1}

	bundle := publish(bob, bobID, 2002, now)
	if err := session.ProcessPreKeyBundle(ctx, rand.Reader, alice.Stores(), bobAddr, bundle, now); err != nil {
		log.Fatal(err)
	}

	typ, ct, err := session.Encrypt(ctx, alice.Stores(), bobAddr, []byte("hello Bob"), now)
	if err != nil {
		log.Fatal(err)
	}
	pt, err := session.Decrypt(ctx, rand.Reader, bob.Stores(), aliceAddr, typ, ct)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("type %d: %s\n", typ, pt)

	typ, ct, _ = session.Encrypt(ctx, bob.Stores(), aliceAddr, []byte("hello Alice"), now)
	pt, err = session.Decrypt(ctx, rand.Reader, alice.Stores(), bobAddr, typ, ct)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("type %d: %s\n", typ, pt)
	// Output:
	// type 3: hello Bob
	// type 2: hello Alice
}

// A session record serializes to bytes for storage and parses back.
func ExampleParseRecord() {
	ctx := context.Background()
	now := time.Now()
	aliceID, _ := session.GenerateIdentityKeyPair(rand.Reader)
	bobID, _ := session.GenerateIdentityKeyPair(rand.Reader)
	alice := session.NewMemoryStore(aliceID, 1)
	bob := session.NewMemoryStore(bobID, 2)
	bobAddr := session.Address{Name: "bob", DeviceID: 1}
	_ = session.ProcessPreKeyBundle(ctx, rand.Reader, alice.Stores(), bobAddr, publish(bob, bobID, 2, now), now)

	rec, _ := alice.LoadSession(ctx, bobAddr)
	stored := rec.Serialize()
	back, err := session.ParseRecord(stored)
	if err != nil {
		log.Fatal(err)
	}
	regID, _ := back.RemoteRegistrationID()
	fmt.Println(back.HasCurrentState(), regID)
	// Output: true 2
}
