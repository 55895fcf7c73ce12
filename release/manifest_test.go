package release

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

func testManifest(version string) *Manifest {
	return &Manifest{Version: version, Platform: "linux/amd64", Commit: "4986d125cb6539a2fb0233eaddf35c2c3de32274",
		MinVersion: "v0.1.0", Files: []File{
			{Name: "sottod", SHA256: sha256.Sum256([]byte("d " + version)), Size: uint64(len("d " + version))},
			{Name: "sotto", SHA256: sha256.Sum256([]byte("c " + version)), Size: uint64(len("c " + version))},
		}}
}

func TestManifestRoundTrip(t *testing.T) {
	enc, err := testManifest("v1.2.3").Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := "sotto release manifest v1\nversion v1.2.3\nplatform linux/amd64\ncommit 4986d125cb6539a2fb0233eaddf35c2c3de32274\nmin-version v0.1.0\nfile sotto "
	if !strings.HasPrefix(string(enc), want) {
		t.Fatalf("encoding:\n%s", enc)
	}
	m, err := ParseManifest(enc)
	if err != nil {
		t.Fatal(err)
	}
	if m.Files[0].Name != "sotto" || m.Version != "v1.2.3" {
		t.Fatalf("parsed %+v", m)
	}
	if err := m.CheckFile("sotto", []byte("c v1.2.3")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][2]string{{"sotto", "c v1.2.4"}, {"sottod", "c v1.2.3"}, {"other", "x"}} {
		if err := m.CheckFile(bad[0], []byte(bad[1])); !errors.Is(err, ErrFileMismatch) {
			t.Errorf("CheckFile(%q) = %v", bad[0], err)
		}
	}
}

func TestManifestRefusesNonCanonical(t *testing.T) {
	enc, _ := testManifest("v1.2.3").Encode()
	s := string(enc)
	for name, bad := range map[string]string{
		"no final newline":   strings.TrimSuffix(s, "\n"),
		"crlf":               strings.ReplaceAll(s, "\n", "\r\n"),
		"double space":       strings.Replace(s, "version ", "version  ", 1),
		"files out of order": strings.Replace(strings.Replace(s, "file sotto ", "file zz ", 1), "file sottod ", "file sotto ", 1),
		"upper-case hash":    strings.Replace(s, "file sotto "+s[strings.Index(s, "file sotto ")+11:strings.Index(s, "file sotto ")+13], "file sotto AB", 1),
		"path as name":       strings.Replace(s, "file sotto ", "file ../sotto ", 1),
		"bad version":        strings.Replace(s, "version v1.2.3", "version 1.2.3", 1),
		"leading zero":       strings.Replace(s, "version v1.2.3", "version v1.02.3", 1),
		"min above version":  strings.Replace(s, "min-version v0.1.0", "min-version v2.0.0", 1),
		"bad platform":       strings.Replace(s, "linux/amd64", "Linux/amd64", 1),
		"bad commit":         strings.Replace(s, "commit 4986", "commit zz86", 1),
		"no files":           s[:strings.Index(s, "file ")],
		"other header":       strings.Replace(s, "manifest v1", "manifest v2", 1),
		"extra line":         s + "extra\n",
	} {
		if _, err := ParseManifest([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseManifest = %v, want ErrMalformed", name, err)
		}
	}
}

func TestSignature(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	enc, _ := testManifest("v1.2.3").Encode()
	sig := Sign(priv, enc)
	if err := VerifySignature(pub, enc, sig); err != nil {
		t.Fatal(err)
	}
	tampered := append([]byte(nil), enc...)
	tampered[len(tampered)-2] ^= 1
	for name, c := range map[string]struct {
		pub      ed25519.PublicKey
		enc, sig []byte
	}{
		"other key":         {other, enc, sig},
		"tampered manifest": {pub, tampered, sig},
		"short signature":   {pub, enc, sig[:10]},
		"no key":            {nil, enc, sig},
	} {
		if err := VerifySignature(c.pub, c.enc, c.sig); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A manifest signature is no tree-head signature and the other way round.
	if ed25519.Verify(pub, enc, sig) {
		t.Fatal("the signature covers the bare manifest: no domain separation")
	}
}

func TestVersions(t *testing.T) {
	order := []string{"v0.0.0-dev", "v0.1.0", "v0.9.0", "v0.10.0", "v1.0.0-rc.1", "v1.0.0-rc.2", "v1.0.0", "v1.0.1", "v2.0.0"}
	for i := range order {
		for j := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareVersions(order[i], order[j]); got != want {
				t.Errorf("CompareVersions(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	for _, bad := range []string{"", "v", "1.2.3", "v1.2", "v1.2.3.4", "v01.2.3", "v1.2.3-", "v1.2.3-a b", "v1.2.x", "v99999999999.0.0"} {
		if _, err := ParseVersion(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseVersion(%q) = %v", bad, err)
		}
	}
	if CompareVersions("garbage", "v0.0.1") >= 0 {
		t.Error("an unparsable version sorts above a valid one")
	}
}
