package mls

import (
	"bytes"
	"testing"
)

// The batch sealer's output opens with crypto/hpke (decryptWithLabel)
// for every suite, and only under the same label and context.
func TestContextSealerMatchesHPKE(t *testing.T) {
	for _, cs := range supportedSuites {
		s, _ := cs.suite()
		ctx := bytes.Repeat([]byte("encrypted group info "), 100)
		sealer, err := s.newContextSealer("Welcome", ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			priv, pub, err := s.generateHPKE()
			if err != nil {
				t.Fatal(err)
			}
			key, _ := s.hpkePrivate(priv)
			pt := []byte("group secrets")
			enc, ct, err := sealer.seal(pub, pt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.decryptWithLabel(key, "Welcome", ctx, enc, ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%v: crypto/hpke cannot open the sealer's output: %v", cs, err)
			}
			if _, err := s.decryptWithLabel(key, "Welcome", ctx[1:], enc, ct); err == nil {
				t.Fatalf("%v: opened under another context", cs)
			}
			if _, err := s.decryptWithLabel(key, "UpdatePathNode", ctx, enc, ct); err == nil {
				t.Fatalf("%v: opened under another label", cs)
			}
		}
		if _, _, err := sealer.seal([]byte{1, 2, 3}, []byte("x")); err == nil {
			t.Fatalf("%v: sealed to a malformed key", cs)
		}
	}
}

func TestParallel(t *testing.T) {
	for _, n := range []int{0, 1, 2, 100} {
		hit := make([]int, n)
		if err := parallel(n, func(i int) error { hit[i]++; return nil }); err != nil {
			t.Fatal(err)
		}
		for i, h := range hit {
			if h != 1 {
				t.Fatalf("n=%d: item %d run %d times", n, i, h)
			}
		}
	}
	if err := parallel(50, func(i int) error {
		if i == 17 {
			return ErrInvalidMessage
		}
		return nil
	}); err != ErrInvalidMessage {
		t.Fatalf("error not returned: %v", err)
	}
}
