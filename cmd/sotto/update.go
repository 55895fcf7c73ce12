package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/update"
	"sotto/internal/safetext"
	"sotto/internal/version"
	"sotto/release"
	"sotto/release/publish"
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

// updateSource is the mirror: --from, or the relay's /releases with the
// TLS roots and pin the device keeps for the relay.
func updateSource(c *client.Client, from string) update.Source {
	if from != "" {
		return update.NewSource(from, nil)
	}
	return update.NewSource(c.ReleasesURL(), c.RelayHTTPClient())
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

type approvedManifest struct {
	Platform string `json:"platform"`
	Commit   string `json:"commit"`
	SHA256   string `json:"manifest_sha256"`
}

// adminReleaseApprove signs the organization's approval of one release:
// the manifests of the given platforms, each checked against the release
// key first.
func adminReleaseApprove(e *env, args []string) error {
	fs := e.flagSet("admin release approve")
	ver := fs.String("version", "", "the release to approve (required)")
	wkey := fs.String("witness-key", "", "the public key (hex) of the witness that co-signs the release log for the organization (required)")
	from := fs.String("from", "", "release mirror: an http(s) URL or a folder (default: the relay's /releases)")
	plats := fs.String("platforms", "linux/amd64,linux/arm64,darwin/arm64,windows/amd64", "platforms to approve (comma-separated GOOS/GOARCH)")
	rkey := fs.String("release-key", "", "the release key (hex; default: the one this binary pins)")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parse(fs, args); err != nil {
		return err
	} else if len(pos) > 0 || *ver == "" || *wkey == "" {
		return errUsage
	}
	witness, err := hex.DecodeString(*wkey)
	if err != nil || len(witness) != ed25519.PublicKeySize {
		return fmt.Errorf("--witness-key: want 64 hex digits")
	}
	key, err := releaseKeyFlag(*rkey)
	if err != nil {
		return err
	}
	c, err := e.connect(false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	src := updateSource(c, *from)
	var hashes [][sha256.Size]byte
	var out []approvedManifest
	var b strings.Builder
	for _, p := range strings.Split(*plats, ",") {
		dir := publish.Dir(*ver, p)
		enc, err := src.Fetch(e.ctx, dir+"/manifest")
		if err != nil {
			return err
		}
		sig, err := src.Fetch(e.ctx, dir+"/manifest.sig")
		if err != nil {
			return err
		}
		if err := release.VerifySignature(key, enc, sig); err != nil {
			return fmt.Errorf("%s %s: %w", *ver, p, err)
		}
		m, err := release.ParseManifest(enc)
		if err != nil {
			return err
		}
		if m.Version != *ver || m.Platform != p {
			return fmt.Errorf("%s: the manifest is for %s %s", dir, m.Version, m.Platform)
		}
		h := release.Hash(enc)
		hashes = append(hashes, h)
		out = append(out, approvedManifest{Platform: p, Commit: m.Commit, SHA256: hex.EncodeToString(h[:])})
		fmt.Fprintf(&b, "%s %s commit %s manifest %x\n", m.Version, p, m.Commit, h)
	}
	n, err := c.ApproveRelease(e.ctx, *ver, hashes, witness)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "approved %s for the organization's devices (queued for %d)\n", *ver, n)
	return emit(e, *asJSON, map[string]any{"version": *ver, "manifests": out, "devices": n}, b.String())
}

type deviceBuild struct {
	User      string `json:"user"`
	Device    uint32 `json:"device"`
	Version   string `json:"version"`
	LeafIndex uint64 `json:"leaf_index"`
	InLog     bool   `json:"in_log"`
	Approved  bool   `json:"approved"`
}

// adminDevices shows which release each device reports it runs, and
// whether that build is in the release log and approved by the org.
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
	c, err := e.connect(false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	reports, bad, err := c.Builds(e.ctx)
	if err != nil {
		return err
	}
	a, err := c.ReleaseApproval(e.ctx)
	if err != nil {
		return err
	}
	// The log as the mirror serves it, accepted only under a head the
	// release key signed and the approval's witness co-signed.
	var leaves [][sha256.Size]byte
	src := updateSource(c, *from)
	if a != nil {
		lb, err1 := src.Fetch(e.ctx, "log/leaves")
		cb, err2 := src.Fetch(e.ctx, "log/checkpoint")
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		cp, err := release.ParseCheckpoint(cb)
		if err != nil {
			return err
		}
		if err := cp.Verify(key, a.WitnessKey); err != nil {
			return err
		}
		all, err := release.ParseLeaves(lb)
		if err != nil {
			return err
		}
		if uint64(len(all)) >= cp.Head.Size {
			if root, err := release.Root(all[:cp.Head.Size]); err == nil && root == cp.Head.Root {
				leaves = all[:cp.Head.Size]
			}
		}
	}
	out := []deviceBuild{}
	var b strings.Builder
	for _, r := range reports {
		d := deviceBuild{User: safetext.Name(r.Username), Device: r.DeviceID, Version: safetext.Line(r.Version), LeafIndex: r.LeafIndex}
		d.InLog = r.LeafIndex < uint64(len(leaves)) && leaves[r.LeafIndex] == r.ManifestHash
		if a != nil {
			for _, h := range a.ManifestHashes {
				if string(h) == string(r.ManifestHash[:]) {
					d.Approved = true
				}
			}
		}
		status := "in the log, approved"
		switch {
		case !d.InLog:
			status = "NOT IN THE RELEASE LOG"
		case !d.Approved:
			status = "NOT APPROVED"
		}
		out = append(out, d)
		fmt.Fprintf(&b, "%s\tdevice %d\t%s\tleaf %d\t%s\n", d.User, d.Device, d.Version, d.LeafIndex, status)
	}
	if bad > 0 {
		fmt.Fprintf(&b, "! %d reports with a bad device signature dropped\n", bad)
	}
	return emit(e, *asJSON, out, b.String())
}
