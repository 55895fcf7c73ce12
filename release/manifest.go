package release

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// A manifest is canonical text, one field per line, in this order:
//
//	sotto release manifest v1
//	version v1.2.3
//	platform linux/amd64
//	commit 4986d125cb6539a2fb0233eaddf35c2c3de32274
//	min-version v1.0.0
//	file sotto 69b173f9...(64 hex) 30818189
//	file sottod 1b0365ca... 30145650
//
// Files are sorted by name. Any other spelling of the same content (spaces,
// order, case, a missing final newline) is refused, so that one manifest has
// one hash.
const manifestHeader = "sotto release manifest v1"

const (
	// MaxManifest bounds an encoded manifest.
	MaxManifest = 4 << 10
	// MaxFiles bounds the files of one manifest.
	MaxFiles = 16
	// MaxFileSize bounds one file a manifest names (1 GiB).
	MaxFileSize = 1 << 30
)

// signatureContext separates release signatures from every other use of the
// release key (it also signs the release log's heads, in package
// transparency's own context).
const signatureContext = "sotto release manifest signature v1\x00"

// Errors a caller may branch on.
var (
	ErrMalformed    = errors.New("release: malformed")
	ErrBadSignature = errors.New("release: not signed by the release key")
	ErrFileMismatch = errors.New("release: file does not match the manifest")
)

// File is one file of a release.
type File struct {
	Name   string
	SHA256 [sha256.Size]byte
	Size   uint64
}

// Manifest describes the files of one version for one platform.
type Manifest struct {
	Version    string // semantic version, "v1.2.3"
	Platform   string // GOOS/GOARCH
	Commit     string // the source commit, hex
	MinVersion string // the oldest version that may update to this one
	Files      []File
}

// Hash is the SHA-256 of an encoded manifest: what the org approves and
// the log records.
func Hash(encoded []byte) [sha256.Size]byte { return sha256.Sum256(encoded) }

// Encode returns the canonical encoding, after checking every field.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.check(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nversion %s\nplatform %s\ncommit %s\nmin-version %s\n",
		manifestHeader, m.Version, m.Platform, m.Commit, m.MinVersion)
	files := append([]File(nil), m.Files...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	for _, f := range files {
		fmt.Fprintf(&b, "file %s %x %d\n", f.Name, f.SHA256, f.Size)
	}
	if b.Len() > MaxManifest {
		return nil, fmt.Errorf("%w: manifest of %d bytes", ErrMalformed, b.Len())
	}
	return b.Bytes(), nil
}

func (m *Manifest) check() error {
	var errs []error
	if _, err := ParseVersion(m.Version); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseVersion(m.MinVersion); err != nil {
		errs = append(errs, err)
	} else if CompareVersions(m.MinVersion, m.Version) > 0 {
		errs = append(errs, fmt.Errorf("%w: min-version %s above version %s", ErrMalformed, m.MinVersion, m.Version))
	}
	if !validPlatform(m.Platform) {
		errs = append(errs, fmt.Errorf("%w: platform %q", ErrMalformed, m.Platform))
	}
	if !validCommit(m.Commit) {
		errs = append(errs, fmt.Errorf("%w: commit %q", ErrMalformed, m.Commit))
	}
	if len(m.Files) == 0 || len(m.Files) > MaxFiles {
		errs = append(errs, fmt.Errorf("%w: %d files", ErrMalformed, len(m.Files)))
	}
	seen := map[string]bool{}
	for _, f := range m.Files {
		if !validName(f.Name) || seen[f.Name] {
			errs = append(errs, fmt.Errorf("%w: file name %q", ErrMalformed, f.Name))
		}
		seen[f.Name] = true
		if f.Size > MaxFileSize {
			errs = append(errs, fmt.Errorf("%w: file %s of %d bytes", ErrMalformed, f.Name, f.Size))
		}
	}
	return errors.Join(errs...)
}

// ParseManifest decodes a canonical manifest. It does not check a signature.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifest {
		return nil, fmt.Errorf("%w: manifest of %d bytes", ErrMalformed, len(b))
	}
	s := string(b)
	if !strings.HasSuffix(s, "\n") {
		return nil, fmt.Errorf("%w: no final newline", ErrMalformed)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) < 6 || lines[0] != manifestHeader {
		return nil, fmt.Errorf("%w: not a release manifest v1", ErrMalformed)
	}
	m := &Manifest{}
	fields := []struct {
		key string
		dst *string
	}{{"version", &m.Version}, {"platform", &m.Platform}, {"commit", &m.Commit}, {"min-version", &m.MinVersion}}
	for i, f := range fields {
		v, ok := strings.CutPrefix(lines[1+i], f.key+" ")
		if !ok {
			return nil, fmt.Errorf("%w: line %d is not %q", ErrMalformed, i+2, f.key)
		}
		*f.dst = v
	}
	for _, l := range lines[5:] {
		parts := strings.Split(l, " ")
		if len(parts) != 4 || parts[0] != "file" {
			return nil, fmt.Errorf("%w: bad file line", ErrMalformed)
		}
		f := File{Name: parts[1]}
		h, err := hex.DecodeString(parts[2])
		if err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("%w: bad SHA-256 for %q", ErrMalformed, f.Name)
		}
		copy(f.SHA256[:], h)
		if f.Size, err = strconv.ParseUint(parts[3], 10, 64); err != nil {
			return nil, fmt.Errorf("%w: bad size for %q", ErrMalformed, f.Name)
		}
		m.Files = append(m.Files, f)
	}
	enc, err := m.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(enc, b) {
		return nil, fmt.Errorf("%w: not in canonical form", ErrMalformed)
	}
	return m, nil
}

// File returns the file named name.
func (m *Manifest) File(name string) (File, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return File{}, false
}

// CheckFile reports whether content is the file named name.
func (m *Manifest) CheckFile(name string, content []byte) error {
	f, ok := m.File(name)
	if !ok {
		return fmt.Errorf("%w: no file %q in the manifest", ErrFileMismatch, name)
	}
	h := sha256.Sum256(content)
	if uint64(len(content)) != f.Size || !bytes.Equal(h[:], f.SHA256[:]) {
		return fmt.Errorf("%w: %s", ErrFileMismatch, name)
	}
	return nil
}

func signedMessage(encoded []byte) []byte {
	h := Hash(encoded)
	return append([]byte(signatureContext), h[:]...)
}

// Sign signs an encoded manifest with the release key.
func Sign(key ed25519.PrivateKey, encoded []byte) []byte {
	return ed25519.Sign(key, signedMessage(encoded))
}

// VerifySignature checks the release key's signature over an encoded manifest.
func VerifySignature(pub ed25519.PublicKey, encoded, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize ||
		!ed25519.Verify(pub, signedMessage(encoded), sig) {
		return ErrBadSignature
	}
	return nil
}

func validPlatform(p string) bool {
	goos, goarch, ok := strings.Cut(p, "/")
	return ok && validWord(goos) && validWord(goarch)
}

func validWord(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

func validCommit(s string) bool {
	if len(s) < 7 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'f') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// validName allows plain file names: letters, digits, '.', '_', '-', not
// starting with '.'; never a path.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return false
		}
	}
	return true
}
