package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/wire"
)

// The organization's release approvals (ORG_RELEASE_APPROVAL): its half of
// the two-person rule for updates (package release). The newest approval
// is in force; a device keeps only it.

// keyReleaseApproval is the key of the org table (tblOrg) for the approval
// in force (its body, verified when it was applied).
var keyReleaseApproval = []byte("release-approval")

func (c *Client) applyReleaseApproval(ctx context.Context, key ed25519.PublicKey, doc *wire.OrgDocument) (orgOutcome, error) {
	a, err := org.OpenReleaseApproval(key, doc)
	if err != nil {
		return orgRejected, err
	}
	cur, err := c.ReleaseApproval(ctx)
	if err != nil {
		return orgTransient, err
	}
	if cur != nil && a.IssuedMs <= cur.IssuedMs {
		// Older or the same: kept already, or a replay of one the org
		// has since replaced. Never an error: synced copies repeat.
		return orgApplied, nil
	}
	if err := c.db.Put(ctx, tblOrg, keyReleaseApproval, doc.Body); err != nil {
		return orgTransient, err
	}
	return orgApplied, nil
}

// ReleaseApproval returns the organization's release approval in force on
// this device (verified against the org key when it arrived), or nil.
func (c *Client) ReleaseApproval(ctx context.Context) (*org.ReleaseApproval, error) {
	b, err := getOpt(ctx, c.db, tblOrg, string(keyReleaseApproval))
	if err != nil || b == nil {
		return nil, err
	}
	var a org.ReleaseApproval
	if err := proto.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("client: release approval: %w", err)
	}
	return &a, nil
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
