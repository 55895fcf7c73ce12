package fingerprint_test

import (
	"crypto/rand"
	"fmt"
	"log"

	"sotto/signal/fingerprint"
	"sotto/signal/keys"
)

// Both sides compute the same 60-digit safety number, and each can check
// the other's QR code payload.
func ExampleNew() {
	alice, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	bob, _ := keys.GenerateIdentityKeyPair(rand.Reader)
	a, err := fingerprint.New(fingerprint.Version, fingerprint.Iterations,
		[]byte("alice"), alice.PublicKey().Serialize(), []byte("bob"), bob.PublicKey().Serialize())
	if err != nil {
		log.Fatal(err)
	}
	b, _ := fingerprint.New(fingerprint.Version, fingerprint.Iterations,
		[]byte("bob"), bob.PublicKey().Serialize(), []byte("alice"), alice.PublicKey().Serialize())
	fmt.Println(len(a.Displayable()), a.Displayable() == b.Displayable())
	scanned, _ := b.Scannable()
	ok, _ := a.CompareScanned(scanned)
	fmt.Println(ok)
	// Output:
	// 60 true
	// true
}
