package mls_test

import (
	"bytes"
	"fmt"
	"log"

	"sotto/mls"
)

// Alice creates a group, adds Bob with a commit and a Welcome, and sends
// him an encrypted message.
func Example() {
	cs := mls.X25519_AES128GCM_SHA256_Ed25519

	aliceKey, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		log.Fatal(err)
	}
	alice, err := mls.NewGroup(cs, []byte("team"), []byte("alice"), aliceKey)
	if err != nil {
		log.Fatal(err)
	}

	// Bob publishes a KeyPackage and keeps its private keys.
	bobKey, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		log.Fatal(err)
	}
	bobKP, bobKeys, err := mls.NewKeyPackage(cs, []byte("bob"), bobKey)
	if err != nil {
		log.Fatal(err)
	}

	// Alice commits Bob's addition; once the delivery service accepts the
	// commit she applies it, and Bob joins from the Welcome.
	pending, err := alice.Commit(mls.CommitOptions{Add: [][]byte{bobKP}})
	if err != nil {
		log.Fatal(err)
	}
	if err := alice.Apply(pending); err != nil {
		log.Fatal(err)
	}
	bob, err := mls.Join(pending.Welcome, bobKP, bobKeys, nil)
	if err != nil {
		log.Fatal(err)
	}

	msg, err := alice.Seal([]byte("hello, bob"))
	if err != nil {
		log.Fatal(err)
	}
	got, err := bob.Handle(msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("epoch %d, members %d\n", bob.Epoch(), len(bob.Members()))
	fmt.Printf("same epoch authenticator: %v\n", bytes.Equal(alice.EpochAuthenticator(), bob.EpochAuthenticator()))
	fmt.Printf("%s\n", got.Data)
	// Output:
	// epoch 1, members 2
	// same epoch authenticator: true
	// hello, bob
}

// Suites 4 and 6 need X448/Ed448, which the standard library lacks.
func ExampleCipherSuite_Supported() {
	for _, cs := range []mls.CipherSuite{mls.X25519_AES128GCM_SHA256_Ed25519, mls.X448_AES256GCM_SHA512_Ed448} {
		fmt.Println(cs, cs.Supported())
	}
	// Output:
	// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 true
	// MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448 false
}

// Members of the same epoch derive the same exported secrets, e.g. for
// SFrame media keys.
func ExampleGroup_Export() {
	cs := mls.P256_AES128GCM_SHA256_P256
	key, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		log.Fatal(err)
	}
	g, err := mls.NewGroup(cs, []byte("call"), []byte("alice"), key)
	if err != nil {
		log.Fatal(err)
	}
	secret, err := g.Export("sframe", nil, 16)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(secret))
	// Output: 16
}
