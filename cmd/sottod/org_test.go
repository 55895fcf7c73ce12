package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sotto/client"
	"sotto/client/store"
	"sotto/relay"
	"sotto/relay/sqlitestore"
)

// TestAdminBootstrap runs the first admin's bootstrap against `sottod
// serve`: the code `sottod admin bootstrap` prints is what `sotto admin
// init --bootstrap` takes (client.ParseBootstrap, client.Bootstrap); the
// relay then keeps that device's org key, makes no bootstrap code any
// more, and `sottod admin devices list` shows which organization
// certified each account.
func TestAdminBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ctx := context.Background()
	dir := t.TempDir()
	p := startProc(t, dir)
	var printed struct {
		Code   string
		LogKey string `json:"log_key"`
	}
	adminJSON(t, &printed, "admin", "bootstrap", "-data", dir, "-relay", p.url)
	code, err := client.ParseBootstrap(printed.Code)
	if err != nil {
		t.Fatal(err)
	}
	logKey, err := loadLogKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if code.RelayUrl != p.url || !bytes.Equal(code.LogKey, logKey.Public().(ed25519.PublicKey)) ||
		printed.LogKey != hex.EncodeToString(code.LogKey) {
		t.Fatalf("bootstrap code names %s and log key %x", code.RelayUrl, code.LogKey)
	}
	admin, err := client.Bootstrap(ctx, client.BootstrapParams{Dir: filepath.Join(t.TempDir(), "admin"), Passphrase: []byte("pw"),
		Code: code, Username: "admin", OrgName: "Acme", DeviceName: "laptop"},
		&client.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatalf("bootstrap with the printed code: %v", err)
	}
	admin.Close()

	var org struct {
		PublicKey   string `json:"public_key"`
		Fingerprint string
	}
	adminJSON(t, &org, "admin", "org", "show", "-data", dir)
	key, _ := hex.DecodeString(org.PublicKey)
	if len(key) != ed25519.PublicKeySize || org.Fingerprint != relay.OrgFingerprint(key) {
		t.Fatalf("org show after bootstrap: %+v", org)
	}

	// Once the organization exists, no bootstrap code is made.
	var out, errb strings.Builder
	if rc := run([]string{"admin", "bootstrap", "-data", dir, "-relay", p.url}, &out, &errb); rc == 0 ||
		!strings.Contains(errb.String(), "the organization exists already") || strings.Contains(out.String(), "sotto-bootstrap:") {
		t.Fatalf("second bootstrap: exit %d, %q %q", rc, out.String(), errb.String())
	}

	// An account from before organizations has no certificate.
	legacy(t, dir, "oldtimer")
	var devs []struct {
		Username     string
		Organization string
		Certified    bool
	}
	adminJSON(t, &devs, "admin", "devices", "list", "-data", dir)
	certified := map[string]string{}
	for _, d := range devs {
		if d.Certified {
			certified[d.Username] = d.Organization
		} else if d.Organization != "" {
			t.Fatalf("uncertified %s shows organization %q", d.Username, d.Organization)
		}
	}
	if len(devs) != 2 || len(certified) != 1 || certified["admin"] != org.Fingerprint {
		t.Fatalf("devices list: %+v", devs)
	}
	out.Reset()
	if rc := run([]string{"admin", "devices", "list", "-data", dir}, &out, &errb); rc != 0 {
		t.Fatalf("devices list: exit %d: %s", rc, errb.String())
	}
	text := out.String()
	for _, re := range []string{`(?m)^USERNAME +DEVICE +NAME +CREATED +LAST SEEN +STATUS +ORGANIZATION$`,
		`(?m)^admin +1 +laptop .* active +` + org.Fingerprint + `$`, `(?m)^oldtimer +1 .* active +NOT CERTIFIED$`} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Fatalf("devices list does not match %s:\n%s", re, text)
		}
	}
}

// legacy enrolls username directly in the relay's store, without an
// identity certificate, as a relay from before organizations did.
func legacy(t *testing.T, dir, username string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	h := sha256.Sum256([]byte("an old activation code"))
	if err := st.CreateCode(ctx, relay.Code{ID: "old", Hash: h, Seats: 1, Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	spk := &relay.SignedPreKey{ID: 1, PublicKey: []byte("p"), Signature: []byte("s")}
	var id relay.AccountID
	id[0] = 9
	if _, _, err := st.Enroll(ctx, relay.NewAccount{CodeHash: h, ID: id, Username: username, IdentityKey: []byte("old key"),
		Device: relay.Device{DeviceKey: make([]byte, 32)}, PreKeys: relay.PreKeys{SignedPreKey: spk, LastResortKyber: spk}}, now); err != nil {
		t.Fatal(err)
	}
}
