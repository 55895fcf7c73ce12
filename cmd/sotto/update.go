package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"sotto/agent/api"
	"sotto/internal/safetext"
	"sotto/internal/version"
)

// sotto update [check|apply]: install a new build only when the release
// key pinned in this binary signed it, the organization approved it, it is
// in the release log under a head the organization's witness co-signed,
// and it is newer than this one (package release).

const updateUsage = `usage:
  sotto update [check] [--from URL|DIR] [--json]         (is there an approved, logged, newer build?)
  sotto update apply [--from URL|DIR] [--binary PATH]    (install it; the old binary stays as PATH.old)
  (--from: a release mirror; default the relay's /releases)
`

type updateResult struct {
	Running   string `json:"running"`
	Available string `json:"available,omitempty"`
	Commit    string `json:"commit,omitempty"`
	LeafIndex uint64 `json:"leaf_index"`
	TreeSize  uint64 `json:"tree_size"`
	Installed string `json:"installed,omitempty"`
}

func cmdUpdate(e *env, args []string) error {
	sub := "check"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if sub != "check" && sub != "apply" {
		fmt.Fprint(e.stderr, updateUsage)
		return errUsage
	}
	fs := e.flagSet("update " + sub)
	from := fs.String("from", "", "release mirror: an http(s) URL or a folder (default: the relay's /releases)")
	binary := fs.String("binary", "", "the binary to replace (default: this one)")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return errUsage
	}
	req := api.UpdateRequest{From: *from}
	if req.From != "" && !strings.HasPrefix(req.From, "https://") && !strings.HasPrefix(req.From, "http://") {
		abs, err := filepath.Abs(req.From)
		if err != nil {
			return err
		}
		req.From = abs
	}
	if sub == "apply" {
		req.Binary = *binary
		if req.Binary == "" {
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			req.Binary = exe
		}
		abs, err := filepath.Abs(req.Binary)
		if err != nil {
			return err
		}
		req.Binary = abs
	}
	// Through the device's agent (docs/agent-api.md, Updates): the running
	// one, which checks against its own build, or one served in this
	// process for this command.
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	var a api.UpdateAnswer
	if err := s.api.Do(e.ctx, http.MethodPost, "/update/"+sub, req, &a); err != nil {
		return agentError(e, err)
	}
	if a.UpToDate {
		return emit(e, *asJSON, updateResult{Running: a.Running}, fmt.Sprintf("up to date: running %s; the organization approved %s\n", a.Running, safetext.Line(a.Approved)))
	}
	res := updateResult{Running: a.Running, Available: safetext.Line(a.Available), Commit: safetext.Line(a.Commit),
		LeafIndex: a.LeafIndex, TreeSize: a.TreeSize, Installed: a.Installed}
	text := fmt.Sprintf("update %s (commit %s) available: signed by the release key, approved by your organization, leaf %d of %d in the release log under a witnessed head\n",
		res.Available, res.Commit, res.LeafIndex, res.TreeSize)
	if sub == "check" {
		return emit(e, *asJSON, res, text)
	}
	text += fmt.Sprintf("installed %s as %s (the previous binary is %s.old)\n", res.Available, res.Installed, res.Installed)
	if s.host == nil {
		text += fmt.Sprintf("the agent still runs %s: restart it (sotto down, then sotto up) to run %s\n", a.Running, res.Available)
	}
	return emit(e, *asJSON, res, text)
}

// releaseKeyFlag returns the release key: --release-key, else the one
// pinned in this binary.
func releaseKeyFlag(s string) (ed25519.PublicKey, error) {
	if s == "" {
		return version.ReleaseKey()
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("--release-key: want 64 hex digits")
	}
	return ed25519.PublicKey(b), nil
}

const adminReleaseUsage = `usage:
  sotto admin release approve --version V --witness-key HEX [--from URL|DIR] [--platforms P,...] [--release-key HEX] [--json]
  sotto admin release devices [--from URL|DIR] [--release-key HEX] [--json]
`

func adminRelease(e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, adminReleaseUsage)
		return errAdminUsage
	}
	switch args[0] {
	case "approve":
		return adminReleaseApprove(e, args[1:])
	case "devices":
		return adminDevices(e, args[1:])
	}
	fmt.Fprint(e.stderr, adminReleaseUsage)
	return errAdminUsage
}

// adminReleaseApprove signs the organization's approval of one release,
// through the device's agent (POST /v1/admin/releases/approve): the
// manifests of the given platforms, each checked against the release key
// first.
func adminReleaseApprove(e *env, args []string) error {
	fs := e.flagSet("admin release approve")
	ver := fs.String("version", "", "the release to approve (required)")
	wkey := fs.String("witness-key", "", "the public key (hex) of the witness that co-signs the release log for the organization (required)")
	from := fs.String("from", "", "release mirror: an http(s) URL or a folder (default: the relay's /releases)")
	plats := fs.String("platforms", strings.Join(api.DefaultPlatforms(), ","), "platforms to approve (comma-separated GOOS/GOARCH)")
	rkey := fs.String("release-key", "", "the release key (hex; default: the one this binary pins)")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 || *ver == "" || *wkey == "" {
		return errUsage
	}
	if w, err := hex.DecodeString(*wkey); err != nil || len(w) != ed25519.PublicKeySize {
		return fmt.Errorf("--witness-key: want 64 hex digits")
	}
	key, err := releaseKeyFlag(*rkey)
	if err != nil {
		return err
	}
	src, err := mirrorFlag(*from)
	if err != nil {
		return err
	}
	req := api.ReleaseApproveRequest{Version: *ver, WitnessKey: *wkey, Platforms: strings.Split(*plats, ","), From: src, ReleaseKey: hex.EncodeToString(key)}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	var a api.ReleaseApproveAnswer
	if err := s.api.Do(e.ctx, http.MethodPost, "/admin/releases/approve", req, &a); err != nil {
		return agentError(e, err)
	}
	var b strings.Builder
	for _, m := range a.Manifests {
		fmt.Fprintf(&b, "%s %s commit %s manifest %s\n", a.Version, m.Platform, m.Commit, m.SHA256)
	}
	fmt.Fprintf(&b, "approved %s for the organization's devices (queued for %d)\n", a.Version, a.Devices)
	return emit(e, *asJSON, map[string]any{"version": a.Version, "manifests": a.Manifests, "devices": a.Devices}, b.String())
}

// mirrorFlag is --from as the agent takes it: an http(s) URL, or a folder
// made absolute ("" for the relay's /releases).
func mirrorFlag(from string) (string, error) {
	if from == "" || strings.HasPrefix(from, "https://") || strings.HasPrefix(from, "http://") {
		return from, nil
	}
	return filepath.Abs(from)
}

// adminDevices shows which release each device reports it runs, and
// whether that build is in the release log and approved by the org,
// through the device's agent (GET /v1/admin/releases/devices).
func adminDevices(e *env, args []string) error {
	fs := e.flagSet("admin devices")
	from := fs.String("from", "", "release mirror: an http(s) URL or a folder (default: the relay's /releases)")
	rkey := fs.String("release-key", "", "the release key (hex; default: the one this binary pins)")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return errUsage
	}
	key, err := releaseKeyFlag(*rkey)
	if err != nil {
		return err
	}
	src, err := mirrorFlag(*from)
	if err != nil {
		return err
	}
	q := url.Values{"release_key": {hex.EncodeToString(key)}}
	if src != "" {
		q.Set("from", src)
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	var a api.DeviceBuildsAnswer
	if err := s.api.Do(e.ctx, http.MethodGet, "/admin/releases/devices?"+q.Encode(), nil, &a); err != nil {
		return agentError(e, err)
	}
	var b strings.Builder
	for _, d := range a.Devices {
		status := "in the log, approved"
		switch {
		case !d.InLog:
			status = "NOT IN THE RELEASE LOG"
		case !d.Approved:
			status = "NOT APPROVED"
		}
		fmt.Fprintf(&b, "%s\tdevice %d\t%s\tleaf %d\t%s\n", safetext.Name(d.User), d.Device, safetext.Line(d.Version), d.LeafIndex, status)
	}
	if a.Bad > 0 {
		fmt.Fprintf(&b, "! %d reports with a bad device signature dropped\n", a.Bad)
	}
	return emit(e, *asJSON, a.Devices, b.String())
}
