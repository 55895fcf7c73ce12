package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"

	"sotto/client/transport"
	"sotto/wire"
)

// A device's name is whatever its client sent. A hostile one (an OSC
// escape that retitles the terminal, a bell, a right-to-left override)
// reaches the operator's `sottod admin devices list` neutralized, as text
// and as JSON. Fails with the sanitizer switched off.
func TestAdminShowsHostileDeviceNamesNeutralized(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	_, seats := inviteIn(t, dir, "mallory")
	p := startProc(t, dir)
	c, err := transport.Dial(context.Background(), p.url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	pub := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	ik := pub(33)
	if _, err := c.Enroll(context.Background(), &wire.EnrollRequest{
		ActivationCode: seats["mallory"].Code, IdentityCertificate: seats["mallory"].Certify(ik),
		Username: "mallory", DeviceName: "lap\x1b]0;owned\x07top\u202eexe", IdentityKey: ik, RegistrationId: 7,
		Prekeys: &wire.PreKeys{
			SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: pub(33), Signature: pub(64)},
			LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: pub(1569), Signature: pub(64)},
		},
	}, key); err != nil {
		t.Fatal(err)
	}
	raw := regexp.MustCompile("[\x1b\x07\u202e]")
	for _, args := range [][]string{{"admin", "devices", "list", "-data", dir}, {"admin", "devices", "list", "-data", dir, "--json"}} {
		var out, errb strings.Builder
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("sottod %v: exit %d: %s", args, code, errb.String())
		}
		if raw.MatchString(out.String()) {
			t.Errorf("sottod %v printed a raw control:\n%q", args, out.String())
		}
		if !strings.Contains(out.String(), `lap\x1b]0;owned\x07top\u202eexe`) && !strings.Contains(out.String(), `lap\\x1b]0;owned\\x07top\\u202eexe`) {
			t.Errorf("sottod %v does not show the name neutralized:\n%s", args, out.String())
		}
	}
}
