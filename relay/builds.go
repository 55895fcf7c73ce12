package relay

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/release"
	"sotto/wire"
)

// Device posture: each device reports the release it runs (its manifest's
// hash and leaf in the release log), signed with its device key; an admin
// lists the reports with a query signed by the org key and checks them
// against the release log and the organization's approval itself. The
// relay keeps only each device's newest report. It cannot forge one; it
// can withhold one, which the admin sees as a device that did not report.

const (
	maxBuildVersion = 64
	maxBuildsListed = 100000
)

// buildRoutes are the device posture requests (wire fields 140-149).
func buildRoutes() []route {
	return []route{
		{&wire.Request_BuildReport{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			if err := c.buildReport(req.GetBuildReport()); err != nil {
				return err
			}
			resp.Body = &wire.Response_BuildReport{BuildReport: &wire.BuildReportResponse{}}
			return nil
		}},
		{&wire.Request_Builds{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.s.builds(c.ctx, req.GetBuilds())
			if err != nil {
				return err
			}
			resp.Body = &wire.Response_Builds{Builds: r}
			return nil
		}},
	}
}

func (c *conn) buildReport(r *wire.BuildReportRequest) error {
	if len(r.GetManifestHash()) != 32 || len(r.GetSignature()) != ed25519.SignatureSize || len(r.GetVersion()) > maxBuildVersion {
		return badRequest("bad build report")
	}
	ds, ok := c.s.dir.(OrgDocumentStore)
	if !ok {
		return ErrNotFound
	}
	dev, err := c.s.dir.Device(c.ctx, c.dev)
	if err != nil {
		return err
	}
	if !ed25519.Verify(dev.DeviceKey, release.BuildReportMessage(r.ManifestHash, r.LeafIndex, r.AtMs, r.Version), r.Signature) {
		return ErrBadSignature
	}
	b, err := proto.Marshal(&wire.BuildReport{Username: c.username, DeviceId: c.dev.Device, ManifestHash: r.ManifestHash,
		LeafIndex: r.LeafIndex, Version: r.Version, AtMs: r.AtMs, Signature: r.Signature, DeviceKey: dev.DeviceKey})
	if err != nil {
		return fmt.Errorf("relay: encode build report: %w", err)
	}
	return ds.PutOrgDocument(c.ctx, wire.OrgDocumentKind_RELAY_BUILD, fmt.Sprintf("%s/%d", c.username, c.dev.Device), b)
}

func (s *Server) builds(ctx context.Context, r *wire.BuildsRequest) (*wire.BuildsResponse, error) {
	if len(r.GetSignature()) != ed25519.SignatureSize {
		return nil, badRequest("bad builds query")
	}
	key, err := s.orgKey(ctx)
	if err != nil {
		return nil, err
	}
	if d := s.cfg.Now().Sub(time.UnixMilli(r.AtMs)); d > deliveryQuerySkew || d < -deliveryQuerySkew {
		return nil, badRequest("builds query too old or from the future")
	}
	if !ed25519.Verify(key, release.BuildsQueryMessage(r.AtMs), r.Signature) {
		return nil, fmt.Errorf("%w: a builds query is signed by the organization key", ErrForbidden)
	}
	lister, ok := s.dir.(OrgDocumentLister)
	if !ok {
		return nil, ErrNotFound
	}
	rs, err := lister.OrgDocumentsWithPrefix(ctx, wire.OrgDocumentKind_RELAY_BUILD, "")
	if err != nil {
		return nil, err
	}
	out := &wire.BuildsResponse{}
	for _, b := range rs[:min(len(rs), maxBuildsListed)] {
		var br wire.BuildReport
		if err := proto.Unmarshal(b, &br); err != nil {
			return nil, fmt.Errorf("relay: stored build report: %w", err)
		}
		out.Reports = append(out.Reports, &br)
	}
	return out, nil
}
