// Package update finds, checks and installs a new build of the sotto
// binary. It fetches a release from a mirror (the relay's /releases, any
// web server, or a folder), has package release check it against what the
// device pins (the release key in the binary, the organization's approval
// and witness), checks the file's hash against the manifest, and replaces
// the binary atomically, keeping the old one beside it. Nothing a mirror
// serves is trusted.
package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sotto/release"
	"sotto/release/publish"
)

// Source is a mirror of a release directory (package release/publish's
// layout).
type Source interface {
	Fetch(ctx context.Context, name string) ([]byte, error)
}

// MaxFetch bounds one file fetched from a mirror.
const MaxFetch = 256 << 20

// NewSource returns the mirror at loc: an http(s) URL, or a folder.
func NewSource(loc string, hc *http.Client) Source {
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		if hc == nil {
			hc = http.DefaultClient
		}
		return &httpSource{base: strings.TrimSuffix(loc, "/"), hc: hc}
	}
	return dirSource(loc)
}

type httpSource struct {
	base string
	hc   *http.Client
}

func (s *httpSource) Fetch(ctx context.Context, name string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/"+name, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("update: fetch %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("update: fetch %s: HTTP %d", name, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxFetch+1))
	if err != nil {
		return nil, fmt.Errorf("update: fetch %s: %w", name, err)
	}
	if len(b) > MaxFetch {
		return nil, fmt.Errorf("update: fetch %s: larger than %d bytes", name, MaxFetch)
	}
	return b, nil
}

type dirSource string

func (d dirSource) Fetch(_ context.Context, name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(string(d), filepath.FromSlash(name)))
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFetch+1))
	if err != nil {
		return nil, fmt.Errorf("update: %w", err)
	}
	if len(b) > MaxFetch {
		return nil, fmt.Errorf("update: %s is larger than %d bytes", name, MaxFetch)
	}
	return b, nil
}

// Found is a release that passed every check.
type Found struct {
	Manifest *release.Manifest
	Position release.Position
	dir      string
}

// Check fetches the release version for the policy's platform and applies
// release.Policy.Check to it.
func Check(ctx context.Context, src Source, p *release.Policy, version string) (*Found, error) {
	if _, err := release.ParseVersion(version); err != nil {
		return nil, err
	}
	dir := publish.Dir(version, p.Platform)
	var c release.Candidate
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{dir + "/manifest", &c.Manifest}, {dir + "/manifest.sig", &c.Signature}, {"log/leaves", &c.Leaves}, {"log/checkpoint", &c.Checkpoint}} {
		b, err := src.Fetch(ctx, f.name)
		if err != nil {
			return nil, err
		}
		*f.dst = b
	}
	m, pos, err := p.Check(c)
	if err != nil {
		return nil, err
	}
	return &Found{Manifest: m, Position: pos, dir: dir}, nil
}

// ErrNotStarted means the new binary did not run and report the version
// its manifest names; nothing was replaced.
var ErrNotStarted = errors.New("update: the new binary did not start")

// Apply fetches the file name of a checked release, checks it against the
// manifest, starts it once (`--version`, which must name the manifest's
// version and commit) and only then replaces target with it, atomically
// (a rename in target's folder). The replaced binary stays as target.old.
// Nothing changes when any step fails.
func Apply(ctx context.Context, src Source, f *Found, name, target string) error {
	b, err := src.Fetch(ctx, f.dir+"/"+name)
	if err != nil {
		return err
	}
	if err := f.Manifest.CheckFile(name, b); err != nil {
		return err
	}
	target, err = filepath.EvalSymlinks(target)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".new-*")
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o755)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if err := started(ctx, tmp.Name(), f.Manifest); err != nil {
		return err
	}
	old := target + ".old"
	if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("update: %w", err)
	}
	if err := os.Link(target, old); err != nil {
		return fmt.Errorf("update: keeping the old binary: %w", err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	if d, err := os.Open(filepath.Dir(target)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// started runs the new binary with --version and checks its answer.
func started(ctx context.Context, path string, m *release.Manifest) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotStarted, err)
	}
	want := m.Version + " (commit " + m.Commit
	if !strings.Contains(string(out), want) {
		return fmt.Errorf("%w: it says %q, the manifest %s", ErrNotStarted, strings.TrimSpace(string(out)), want)
	}
	return nil
}
