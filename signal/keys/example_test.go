package keys_test

import (
	"crypto/rand"
	"fmt"
	"log"

	"sotto/signal/keys"
)

// An identity key signs a prekey's serialized public key with XEdDSA, as
// libsignal does; anyone holding the identity's public key verifies it.
func ExampleIdentityKeyPair_Sign() {
	id, err := keys.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	prekey, _ := keys.GenerateKeyPair(rand.Reader)
	sig, _ := id.Sign(rand.Reader, prekey.Public.Serialize())
	fmt.Println(len(sig), id.PublicKey().Verify(sig, prekey.Public.Serialize()))
	fmt.Println(id.PrivateKey())
	// Output:
	// 64 true
	// PrivateKey(redacted)
}
