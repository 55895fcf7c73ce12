package agent

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
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

// Releases in the organization's console (sotto admin release approve and
// sotto admin devices, beside sotto up too): the agent fetches a
// release's manifests from the mirror, checks each against the release
// key before the organization's key signs the approval, and checks the
// builds the devices report against the release log under a head the
// approval's witness co-signed. Admin-only like the rest of the console
// (orgAdmin, before anything is fetched).

func routeAdminRelease(mux *http.ServeMux, h *handler) {
	p := api.Prefix + "/admin/releases"
	mux.HandleFunc("POST "+p+"/approve", h.orgAdmin(h.adminReleaseApprove))
	mux.HandleFunc("GET "+p+"/devices", h.orgAdmin(h.adminReleaseDevices))
}

// releaseSource is the mirror a request names (an http(s) URL or an
// absolute folder), else the relay's /releases with the device's TLS
// roots and pin for the relay.
func releaseSource(c *client.Client, from string) (update.Source, error) {
	switch {
	case from == "":
		return update.NewSource(c.ReleasesURL(), c.RelayHTTPClient()), nil
	case strings.HasPrefix(from, "https://") || strings.HasPrefix(from, "http://") || filepath.IsAbs(from):
		return update.NewSource(from, nil), nil
	}
	return nil, badRequest("from must be an http(s) URL or an absolute folder")
}

// releaseKey is the key in hex a request names, else the agent's pinned one.
func releaseKey(s string) (ed25519.PublicKey, error) {
	if s == "" {
		return version.ReleaseKey()
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, badRequest("release_key: want 64 hex digits")
	}
	return ed25519.PublicKey(b), nil
}

func (h *handler) adminReleaseApprove(r *http.Request, c *client.Client) (any, error) {
	var req api.ReleaseApproveRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if _, err := release.ParseVersion(req.Version); err != nil {
		return nil, badRequest("version: %v", err)
	}
	witness, err := hex.DecodeString(req.WitnessKey)
	if err != nil || len(witness) != ed25519.PublicKeySize {
		return nil, badRequest("witness_key: want 64 hex digits")
	}
	key, err := releaseKey(req.ReleaseKey)
	if err != nil {
		return nil, err
	}
	src, err := releaseSource(c, req.From)
	if err != nil {
		return nil, err
	}
	plats := req.Platforms
	if len(plats) == 0 {
		plats = api.DefaultPlatforms()
	}
	ctx := r.Context()
	a := api.ReleaseApproveAnswer{Version: req.Version, Manifests: []api.ApprovedManifest{}}
	var hashes [][sha256.Size]byte
	for _, p := range plats {
		if strings.Count(p, "/") != 1 || strings.ContainsAny(p, `.\`) {
			return nil, badRequest("platform %q: want GOOS/GOARCH", safetext.Line(p))
		}
		dir := publish.Dir(req.Version, p)
		enc, err1 := src.Fetch(ctx, dir+"/manifest")
		sig, err2 := src.Fetch(ctx, dir+"/manifest.sig")
		if err := errors.Join(err1, err2); err != nil {
			return nil, &api.Error{Kind: api.KindNotFound, Message: fmt.Sprintf("%s %s: %v", req.Version, p, err)}
		}
		if err := release.VerifySignature(key, enc, sig); err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Version, p, err)
		}
		m, err := release.ParseManifest(enc)
		if err != nil {
			return nil, err
		}
		if m.Version != req.Version || m.Platform != p {
			return nil, fmt.Errorf("%s: the manifest is for %s %s: %w", dir, safetext.Line(m.Version), safetext.Line(m.Platform), release.ErrMalformed)
		}
		hash := release.Hash(enc)
		hashes = append(hashes, hash)
		a.Manifests = append(a.Manifests, api.ApprovedManifest{Platform: p, Commit: safetext.Line(m.Commit), SHA256: hex.EncodeToString(hash[:])})
	}
	n, err := c.ApproveRelease(ctx, req.Version, hashes, witness)
	if err != nil {
		return nil, err
	}
	a.Devices = n
	return a, nil
}

func (h *handler) adminReleaseDevices(r *http.Request, c *client.Client) (any, error) {
	q := r.URL.Query()
	key, err := releaseKey(q.Get("release_key"))
	if err != nil {
		return nil, err
	}
	src, err := releaseSource(c, q.Get("from"))
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	// The newest approval, as a connection of its own would fetch it.
	if err := c.RefreshOrgDocuments(ctx); err != nil {
		return nil, err
	}
	reports, bad, err := c.Builds(ctx)
	if err != nil {
		return nil, err
	}
	approval, err := c.ReleaseApproval(ctx)
	if err != nil {
		return nil, err
	}
	// The log as the mirror serves it, accepted only under a head the
	// release key signed and the approval's witness co-signed.
	var leaves [][sha256.Size]byte
	if approval != nil {
		lb, err1 := src.Fetch(ctx, "log/leaves")
		cb, err2 := src.Fetch(ctx, "log/checkpoint")
		if err := errors.Join(err1, err2); err != nil {
			return nil, &api.Error{Kind: api.KindUnavailable, Message: fmt.Sprintf("the release log: %v", err)}
		}
		cp, err := release.ParseCheckpoint(cb)
		if err != nil {
			return nil, err
		}
		if err := cp.Verify(key, approval.WitnessKey); err != nil {
			return nil, err
		}
		all, err := release.ParseLeaves(lb)
		if err != nil {
			return nil, err
		}
		if uint64(len(all)) >= cp.Head.Size {
			if root, err := release.Root(all[:cp.Head.Size]); err == nil && root == cp.Head.Root {
				leaves = all[:cp.Head.Size]
			}
		}
	}
	out := api.DeviceBuildsAnswer{Devices: []api.DeviceBuild{}, Bad: bad}
	for _, rep := range reports {
		d := api.DeviceBuild{User: safetext.Name(rep.Username), Device: rep.DeviceID, Version: safetext.Line(rep.Version), LeafIndex: rep.LeafIndex}
		d.InLog = rep.LeafIndex < uint64(len(leaves)) && leaves[rep.LeafIndex] == rep.ManifestHash
		if approval != nil {
			for _, h := range approval.ManifestHashes {
				if string(h) == string(rep.ManifestHash[:]) {
					d.Approved = true
				}
			}
		}
		out.Devices = append(out.Devices, d)
	}
	return out, nil
}
