package version

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveStampWins(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "ffff"}, {Key: "vcs.modified", Value: "true"}}}
	in := resolve("v1.2.3", "abcd", bi)
	if in.Version != "v1.2.3" || in.Commit != "abcd" || in.Modified || !in.Stamped || in.GoVersion != "go1.26.8" {
		t.Fatalf("resolve = %+v", in)
	}
	if got := in.String(); got != "v1.2.3 (commit abcd, go1.26.8)" {
		t.Fatalf("String = %q", got)
	}
}

func TestResolveFallsBackToBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "ffff"}, {Key: "vcs.modified", Value: "true"}}}
	in := resolve("", "", bi)
	if in.Version != Dev || in.Commit != "ffff" || !in.Modified || in.Stamped {
		t.Fatalf("resolve = %+v", in)
	}
	if !strings.Contains(in.String(), "ffff+modified") {
		t.Fatalf("String = %q", in.String())
	}
	if in := resolve("", "", nil); in.Version != Dev || in.Commit != "" {
		t.Fatalf("resolve without build info = %+v", in)
	}
	if got := resolve("", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.4.0"}}).Version; got != "v0.4.0" {
		t.Fatalf("module version = %q", got)
	}
}

func TestCurrentInTest(t *testing.T) {
	// A test binary is never stamped.
	if in := Current(); in.Stamped || in.Version == "" {
		t.Fatalf("Current = %+v", in)
	}
	if _, err := ReleaseKey(); !errors.Is(err, ErrNoReleaseKey) {
		t.Fatalf("ReleaseKey in an unstamped build: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	got, err := parseKey(hex.EncodeToString(pub))
	if err != nil || !got.Equal(pub) {
		t.Fatalf("parseKey: %v", err)
	}
	for _, bad := range []string{"zz", "abcd", hex.EncodeToString(append(pub, 0))} {
		if _, err := parseKey(bad); err == nil || errors.Is(err, ErrNoReleaseKey) {
			t.Errorf("parseKey(%q) = %v, want a format error", bad, err)
		}
	}
}
