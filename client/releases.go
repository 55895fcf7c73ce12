package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/client/orgstate"
	"sotto/client/transport"
	"sotto/internal/version"
	"sotto/release"
	"sotto/wire"
)

// The organization's release approvals (ORG_RELEASE_APPROVAL): its half of
// the two-person rule for updates (package release). The newest approval
// is in force; a device keeps only it.

// ReleaseApproval returns the organization's release approval in force on
// this device (verified against the org key when it arrived), or nil.
func (c *Client) ReleaseApproval(ctx context.Context) (*org.ReleaseApproval, error) {
	return orgstate.ReleaseApproval(ctx, c.db)
}

// RefreshOrgDocuments fetches now, on the current connection, what the
// relay keeps of the organization's documents, as every connection does
// first: a connected device then holds the newest release approval even
// before its fan-out arrives (sotto update through the agent checks what
// the same command alone would). Failures leave what the device holds.
func (c *Client) RefreshOrgDocuments(ctx context.Context) error {
	conn, err := c.connection()
	if err != nil {
		return err
	}
	c.syncOrg(ctx, conn)
	return nil
}

// ApproveRelease signs, with the org key, an approval of the manifests
// (their SHA-256) of one release and has the relay deliver it to every
// device: from then on devices may install those builds, and no other
// that an earlier approval named. witnessKey is the witness whose
// co-signature the release log's head must carry. It returns how many
// devices the approval was queued for.
func (c *Client) ApproveRelease(ctx context.Context, version string, manifests [][sha256.Size]byte, witnessKey ed25519.PublicKey) (int, error) {
	if len(manifests) == 0 || len(manifests) > org.MaxApprovedManifests {
		return 0, fmt.Errorf("client: approve %d manifests (1 to %d)", len(manifests), org.MaxApprovedManifests)
	}
	if len(witnessKey) != ed25519.PublicKeySize {
		return 0, fmt.Errorf("client: the release witness key is not an Ed25519 public key")
	}
	a := &org.ReleaseApproval{Version: version, WitnessKey: witnessKey, IssuedMs: c.opts.Now().UnixMilli()}
	for _, h := range manifests {
		a.ManifestHashes = append(a.ManifestHashes, append([]byte(nil), h[:]...))
	}
	return c.publish(ctx, wire.OrgDocumentKind_ORG_RELEASE_APPROVAL, a, "", 0)
}

// ---- the organization's minimum version ----

// ErrUpdateRequired means the organization's policy sets a minimum version
// above the one this device runs: it keeps receiving and reading, and sends
// nothing until it is updated (sotto update).
var ErrUpdateRequired = errors.New("client: the organization requires a newer Sotto to send; messages still arrive and stay readable (run sotto update)")

// VersionTooOldError is ErrUpdateRequired with the versions.
type VersionTooOldError struct{ Running, Minimum string }

func (e *VersionTooOldError) Error() string {
	return fmt.Sprintf("%v: this device runs %s, the organization requires at least %s", ErrUpdateRequired, e.Running, e.Minimum)
}

func (e *VersionTooOldError) Unwrap() error { return ErrUpdateRequired }

// versionAllowsSending checks the running version against the policy's
// minimum.
func (c *Client) versionAllowsSending(ctx context.Context) error {
	p, err := c.OrgPolicy(ctx)
	if err != nil {
		return err
	}
	running := version.Current().Version
	if min := p.GetMinClientVersion(); min != "" && release.CompareVersions(running, min) < 0 {
		return &VersionTooOldError{Running: running, Minimum: min}
	}
	return nil
}

// ---- device posture ----

// keyInstalledBuild is the tblOrg key of the release this device installed
// last (sotto update): an encoded wire.BuildReportRequest without signature.
var keyInstalledBuild = []byte("installed-build")

// RecordInstalledBuild notes the release just installed, so that the new
// binary reports it once it runs (reportBuild).
func (c *Client) RecordInstalledBuild(ctx context.Context, ver string, manifestHash [sha256.Size]byte, leafIndex uint64) error {
	b, err := proto.Marshal(&wire.BuildReportRequest{Version: ver, ManifestHash: manifestHash[:], LeafIndex: leafIndex})
	if err != nil {
		return err
	}
	return c.db.Put(ctx, tblOrg, keyInstalledBuild, b)
}

// reportBuild tells the relay, signed with the device key, which release
// this device runs, when it runs the build it installed last. A build not
// installed by sotto update reports nothing: the admin sees it as
// unreported.
func (c *Client) reportBuild(ctx context.Context, conn *transport.Conn) {
	b, err := getOpt(ctx, c.db, tblOrg, string(keyInstalledBuild))
	if err != nil || b == nil {
		return
	}
	var r wire.BuildReportRequest
	if proto.Unmarshal(b, &r) != nil || r.Version != version.Current().Version {
		return
	}
	r.AtMs = c.opts.Now().UnixMilli()
	c.cryptoMu.Lock()
	r.Signature = ed25519.Sign(c.acct.PrivateDeviceKey(), release.BuildReportMessage(r.ManifestHash, r.LeafIndex, r.AtMs, r.Version))
	c.cryptoMu.Unlock()
	if _, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_BuildReport{BuildReport: &r}}); err != nil {
		c.log.Info("build report not sent", "err", err)
	}
}

// BuildReport is one device's report of the release it runs, with the
// device-key signature checked.
type BuildReport struct {
	Username     string
	DeviceID     uint32
	Version      string
	ManifestHash [sha256.Size]byte
	LeafIndex    uint64
	At           time.Time
}

// Builds lists the devices' build reports (an admin's device: the query is
// signed with the org key). Reports whose signature does not verify with
// the device key the relay gives are dropped and counted in bad.
func (c *Client) Builds(ctx context.Context) (reports []BuildReport, bad int, err error) {
	priv, err := c.adminKey(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer clear(priv)
	conn, err := c.connection()
	if err != nil {
		return nil, 0, err
	}
	at := c.opts.Now().UnixMilli()
	resp, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_Builds{Builds: &wire.BuildsRequest{
		AtMs: at, Signature: ed25519.Sign(priv, release.BuildsQueryMessage(at))}}})
	if err != nil {
		return nil, 0, fmt.Errorf("client: builds: %w", err)
	}
	for _, r := range resp.GetBuilds().GetReports() {
		if len(r.DeviceKey) != ed25519.PublicKeySize || len(r.ManifestHash) != sha256.Size ||
			!ed25519.Verify(r.DeviceKey, release.BuildReportMessage(r.ManifestHash, r.LeafIndex, r.AtMs, r.Version), r.Signature) {
			bad++
			continue
		}
		br := BuildReport{Username: r.Username, DeviceID: r.DeviceId, Version: r.Version, LeafIndex: r.LeafIndex, At: time.UnixMilli(r.AtMs)}
		copy(br.ManifestHash[:], r.ManifestHash)
		reports = append(reports, br)
	}
	return reports, bad, nil
}

// RelayHTTPClient is the HTTP client for the relay, with the TLS roots and
// pin this device keeps for it.
func (c *Client) RelayHTTPClient() *http.Client { return c.relayHTTP }

// ReleasesURL is the relay's release mirror (relay.WithReleases).
func (c *Client) ReleasesURL() string {
	u := c.acct.Relay
	switch {
	case strings.HasPrefix(u, "wss://"):
		u = "https://" + strings.TrimPrefix(u, "wss://")
	case strings.HasPrefix(u, "ws://"):
		u = "http://" + strings.TrimPrefix(u, "ws://")
	}
	return strings.TrimSuffix(u, "/") + "/releases"
}
