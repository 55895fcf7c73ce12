// Package version says which build of Sotto is running: the version and
// source commit a release build stamps into the binary, and the project's
// release key that build pins for `sotto update`.
//
// A release build sets them with the linker:
//
//	go build -trimpath -ldflags '-buildid= -X sotto/internal/version.version=v1.2.3 \
//	    -X sotto/internal/version.commit=0123abcd... -X sotto/internal/version.releaseKey=HEX'
//
// (`make release` does this). A build without them, such as `go build` or
// `go run` from a checkout, falls back to what the Go toolchain recorded
// (debug.ReadBuildInfo): the module version and, when built with VCS
// stamping, the commit.
package version

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Set by the linker (-X); empty in a development build. These are the only
// package-level variables: the linker can set nothing else.
var (
	version    string
	commit     string
	releaseKey string // hex Ed25519 public key
)

// Dev is the version of a build that was not stamped.
const Dev = "v0.0.0-dev"

// Info describes one build.
type Info struct {
	Version   string // a semantic version, "v1.2.3", or Dev
	Commit    string // the source commit (hex), or "" when unknown
	Modified  bool   // built from a tree with uncommitted changes (VCS stamping only)
	GoVersion string // the toolchain that built it
	Stamped   bool   // Version and Commit came from a release build's stamp
}

// Current returns the running binary's build information.
func Current() Info {
	return resolve(version, commit, readBuildInfo())
}

func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// resolve merges the linker stamp with the toolchain's record; the stamp wins.
func resolve(stampVersion, stampCommit string, bi *debug.BuildInfo) Info {
	in := Info{Version: stampVersion, Commit: stampCommit, GoVersion: runtime.Version()}
	in.Stamped = stampVersion != ""
	if bi == nil {
		if in.Version == "" {
			in.Version = Dev
		}
		return in
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	if in.Version == "" {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			in.Version = v
		} else {
			in.Version = Dev
		}
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			if in.Commit == "" {
				in.Commit = s.Value
			}
		case "vcs.modified":
			in.Modified = s.Value == "true" && !in.Stamped
		}
	}
	return in
}

// String is the one line `--version` prints.
func (i Info) String() string {
	c := i.Commit
	if c == "" {
		c = "unknown"
	}
	if i.Modified {
		c += "+modified"
	}
	return fmt.Sprintf("%s (commit %s, %s)", i.Version, c, i.GoVersion)
}

// ErrNoReleaseKey means the binary pins no release key: it was not built
// by `make release`, so it cannot check an update.
var ErrNoReleaseKey = errors.New("version: this build pins no release key (build with make release RELEASE_KEY=...)")

// ReleaseKey returns the project's release key the binary pins.
func ReleaseKey() (ed25519.PublicKey, error) {
	return parseKey(releaseKey)
}

func parseKey(s string) (ed25519.PublicKey, error) {
	if s == "" {
		return nil, ErrNoReleaseKey
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("version: the pinned release key %q is not a hex Ed25519 public key", s)
	}
	return ed25519.PublicKey(b), nil
}

// PrintIfAsked answers `PROGRAM --version` (or `-version`, `version`): it
// reports whether args ask for the version, and prints it to w if so.
func PrintIfAsked(program string, args []string, w io.Writer) bool {
	if len(args) != 1 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "version":
		fmt.Fprintf(w, "%s %s\n", program, Current())
		return true
	}
	return false
}
