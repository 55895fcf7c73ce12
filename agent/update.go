package agent

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/update"
	"sotto/internal/version"
	"sotto/release"
)

// Updates through the agent (sotto update beside sotto up): the agent
// holds the device's one relay connection, so it fetches the release
// approval, checks a release against the policy of package release (the
// release key pinned in the agent's binary, the organization's approval,
// the release log under a witnessed head, newer than the agent's build)
// and installs it. The checks are the ones sotto update makes alone: the
// command without a running agent goes through an agent served in its
// own process.

func routeUpdate(mux *http.ServeMux, h *handler) {
	p := api.Prefix + "/update"
	mux.HandleFunc("POST "+p+"/check", h.online(h.updateCheck))
	mux.HandleFunc("POST "+p+"/apply", h.online(h.updateApply))
}

func (h *handler) updateCheck(r *http.Request, c *client.Client) (any, error) {
	req, err := updateRequest(r, false)
	if err != nil {
		return nil, err
	}
	a, _, _, err := findUpdate(r, c, req)
	return a, err
}

func (h *handler) updateApply(r *http.Request, c *client.Client) (any, error) {
	req, err := updateRequest(r, true)
	if err != nil {
		return nil, err
	}
	a, found, src, err := findUpdate(r, c, req)
	if err != nil || found == nil {
		return a, err
	}
	name := "sotto"
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	if err := update.Apply(r.Context(), src, found, name, req.Binary); err != nil {
		return nil, err
	}
	if err := c.RecordInstalledBuild(r.Context(), found.Manifest.Version, found.Position.ManifestHash, found.Position.Index); err != nil {
		return nil, err
	}
	a.Installed = req.Binary
	return a, nil
}

func updateRequest(r *http.Request, apply bool) (api.UpdateRequest, error) {
	var req api.UpdateRequest
	if err := decode(r, &req); err != nil {
		return req, err
	}
	if req.From != "" && !strings.HasPrefix(req.From, "https://") && !strings.HasPrefix(req.From, "http://") && !filepath.IsAbs(req.From) {
		return req, badRequest("from must be an http(s) URL or an absolute folder")
	}
	if apply && !filepath.IsAbs(req.Binary) {
		return req, badRequest("binary must be an absolute path")
	}
	return req, nil
}

// findUpdate checks the release the organization approved: found is nil
// when it is not newer than the running build (a.UpToDate).
func findUpdate(r *http.Request, c *client.Client, req api.UpdateRequest) (a *api.UpdateAnswer, found *update.Found, src update.Source, err error) {
	ctx := r.Context()
	key, err := version.ReleaseKey()
	if err != nil {
		return nil, nil, nil, err
	}
	// The newest approval, as a connection of its own would fetch it.
	if err := c.RefreshOrgDocuments(ctx); err != nil {
		return nil, nil, nil, err
	}
	approval, err := c.ReleaseApproval(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	running := version.Current().Version
	if approval == nil {
		return nil, nil, nil, &api.Error{Kind: api.KindNotFound, Message: fmt.Sprintf("your organization has approved no release (running %s)", running)}
	}
	p := &release.Policy{ReleaseKey: key, WitnessKey: approval.WitnessKey, Running: running, Platform: runtime.GOOS + "/" + runtime.GOARCH}
	for _, h := range approval.ManifestHashes {
		p.Approved = append(p.Approved, [sha256.Size]byte(h))
	}
	src = update.NewSource(req.From, nil)
	if req.From == "" {
		src = update.NewSource(c.ReleasesURL(), c.RelayHTTPClient())
	}
	a = &api.UpdateAnswer{Running: running, Approved: approval.Version}
	found, err = update.Check(ctx, src, p, approval.Version)
	if errors.Is(err, release.ErrRollback) {
		a.UpToDate = true
		return a, nil, src, nil
	}
	if err != nil {
		return nil, nil, nil, err
	}
	a.Available, a.Commit = found.Manifest.Version, found.Manifest.Commit
	a.LeafIndex, a.TreeSize = found.Position.Index, found.Position.TreeSize
	return a, found, src, nil
}
