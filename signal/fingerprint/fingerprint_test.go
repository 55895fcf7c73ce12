package fingerprint

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Inputs and expected outputs from libsignal's fingerprint tests.
func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLibsignalVectors(t *testing.T) {
	alice := mustHex(t, "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868")
	bob := mustHex(t, "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b")
	aliceID, bobID := []byte("+14152222222"), []byte("+14153333333")
	const display = "300354477692869396892869876765458257569162576843440918079131"
	for _, tc := range []struct {
		version      int
		aScan, bScan string
	}{
		{1, "080112220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d",
			"080112220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d1a220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df"},
		{2, "080212220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d",
			"080212220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d1a220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df"},
	} {
		a, err := New(tc.version, Iterations, aliceID, alice, bobID, bob)
		if err != nil {
			t.Fatal(err)
		}
		b, err := New(tc.version, Iterations, bobID, bob, aliceID, alice)
		if err != nil {
			t.Fatal(err)
		}
		if a.Displayable() != display || b.Displayable() != display {
			t.Errorf("v%d displayable = %s / %s", tc.version, a.Displayable(), b.Displayable())
		}
		as, _ := a.Scannable()
		bs, _ := b.Scannable()
		if hex.EncodeToString(as) != tc.aScan || hex.EncodeToString(bs) != tc.bScan {
			t.Errorf("v%d scannable mismatch", tc.version)
		}
		if ok, err := a.CompareScanned(bs); !ok || err != nil {
			t.Errorf("v%d compare = %v, %v", tc.version, ok, err)
		}
		if ok, _ := a.CompareScanned(as); ok {
			t.Errorf("v%d: own scannable matched", tc.version)
		}
	}
	// A different remote key changes the number.
	other := append([]byte(nil), bob...)
	other[5] ^= 1
	c, _ := New(2, Iterations, aliceID, alice, bobID, other)
	if c.Displayable() == display {
		t.Error("changed key kept the safety number")
	}
	v1, _ := New(1, Iterations, aliceID, alice, bobID, bob)
	s1, _ := v1.Scannable()
	v2, _ := New(2, Iterations, bobID, bob, aliceID, alice)
	if _, err := v2.CompareScanned(s1); !errors.Is(err, ErrVersionMismatch) {
		t.Errorf("version mismatch error = %v", err)
	}
	if _, err := New(2, 1, aliceID, alice, bobID, bob); !errors.Is(err, ErrInvalid) {
		t.Errorf("iterations=1 error = %v", err)
	}
	if len(display) != 60 || strings.Trim(display, "0123456789") != "" {
		t.Fatal("bad constant")
	}
}

func FuzzCompareScanned(f *testing.F) {
	alice := make([]byte, 33)
	alice[0] = 5
	a, err := New(2, 2, []byte("a"), alice, []byte("b"), alice)
	if err != nil {
		f.Fatal(err)
	}
	s, _ := a.Scannable()
	seeds := [][]byte{s, s[:10], {}}
	for _, sd := range seeds {
		f.Add(sd)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = a.CompareScanned(b)
	})
}
