package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"sotto/orgcert"
	"sotto/wire"
)

// The organization. The relay holds only the org's public key; it checks
// the signature of what it fans out (so that nobody else can fill every
// mailbox with documents that clients would drop), but it is not trusted
// for it: every client verifies every document itself, against the key
// its invitation carried (or, on the first admin's device, made).

// OrgKeyStore is implemented by directories that keep the org public key.
type OrgKeyStore interface {
	// OrgKey returns the org public key, or ErrNotFound.
	OrgKey(ctx context.Context) ([]byte, error)
	// SetOrgKey stores the org public key.
	SetOrgKey(ctx context.Context, key []byte) error
}

// OrgDocumentStore is implemented by directories that keep the latest
// org documents for devices that missed their fan-out.
type OrgDocumentStore interface {
	// PutOrgDocument keeps doc (an encoded wire.OrgDocument) as the
	// latest of its kind for subject ("" for the policy, the username
	// for a certificate).
	PutOrgDocument(ctx context.Context, kind wire.OrgDocumentKind, subject string, doc []byte) error
	// OrgDocument returns the latest document of kind for subject, or
	// ErrNotFound.
	OrgDocument(ctx context.Context, kind wire.OrgDocumentKind, subject string) ([]byte, error)
}

// orgDomains mirror client/org's signature domains.
var orgDomains = map[wire.OrgDocumentKind]string{
	wire.OrgDocumentKind_ORG_NOTICE:           "sotto/org notice v1\x00",
	wire.OrgDocumentKind_ORG_POLICY:           "sotto/org policy v1\x00",
	wire.OrgDocumentKind_ORG_WIPE:             "sotto/org wipe v1\x00",
	wire.OrgDocumentKind_ORG_CERTIFICATE:      "sotto/org certificate v1\x00",
	wire.OrgDocumentKind_ORG_INVITATION:       orgcert.GrantDomain,
	wire.OrgDocumentKind_ORG_MEMBER_ACCESS:    "sotto/org member access v1\x00",
	wire.OrgDocumentKind_ORG_RELEASE_APPROVAL: "sotto/org release approval v1\x00",
}

const (
	orgWipeConfirmDomain = "sotto/org wipe-confirm v1\x00"
	maxOrgDocument       = 16 << 10
	orgFanoutBatch       = 256
)

// ErrNoOrgKey reports that no org key is registered with the relay.
var ErrNoOrgKey = withReason(ErrNotFound, "no organization key registered")

func (s *Server) orgKey(ctx context.Context) ([]byte, error) {
	ks, ok := s.dir.(OrgKeyStore)
	if !ok {
		return nil, ErrNoOrgKey
	}
	k, err := ks.OrgKey(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNoOrgKey
	}
	return k, err
}

// orgRoutes are the organization's requests (all authenticated).
func orgRoutes() []route {
	return []route{
		{&wire.Request_OrgKey{}, authedOnly, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			k, err := c.s.orgKey(c.ctx)
			if err != nil && !errors.Is(err, ErrNoOrgKey) {
				return err
			}
			resp.Body = &wire.Response_OrgKey{OrgKey: &wire.OrgKeyResponse{PublicKey: k}}
			return nil
		}},
		{&wire.Request_OrgPublish{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r := req.GetOrgPublish()
			n, err := c.orgPublish(r)
			if err != nil {
				return err
			}
			h := sha256.Sum256(r.GetDocument().GetBody())
			resp.Body = &wire.Response_OrgPublish{OrgPublish: &wire.OrgPublishResponse{Devices: uint32(n), DocumentHash: h[:]}}
			return nil
		}},
		{&wire.Request_OrgReceipt{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			if err := c.orgReceipt(req.GetOrgReceipt()); err != nil {
				return err
			}
			resp.Body = &wire.Response_OrgReceipt{OrgReceipt: &wire.OrgReceiptResponse{}}
			return nil
		}},
		{&wire.Request_OrgDelivery{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.s.orgDelivery(c.ctx, req.GetOrgDelivery())
			if err != nil {
				return err
			}
			resp.Body = &wire.Response_OrgDelivery{OrgDelivery: r}
			return nil
		}},
		{&wire.Request_OrgDocuments{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			docs, err := c.orgDocuments(req.GetOrgDocuments().GetUsername())
			if err != nil {
				return err
			}
			resp.Body = &wire.Response_OrgDocuments{OrgDocuments: &wire.OrgDocumentsResponse{Documents: docs}}
			return nil
		}},
		{&wire.Request_OrgInvite{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.handleInvite(req.GetOrgInvite())
			if err != nil {
				return err
			}
			resp.Body = &wire.Response_OrgInvite{OrgInvite: r}
			return nil
		}},
		{&wire.Request_OrgWipeConfirm{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			if err := c.orgWipeConfirm(req.GetOrgWipeConfirm()); err != nil {
				return err
			}
			resp.Body = &wire.Response_OrgWipeConfirm{OrgWipeConfirm: &wire.OrgWipeConfirmResponse{}}
			return nil
		}},
	}
}

func (c *conn) orgPublish(r *wire.OrgPublishRequest) (int, error) {
	doc := r.GetDocument()
	if err := checkOrgDocumentShape(doc); err != nil {
		return 0, err
	}
	key, err := c.s.orgKey(c.ctx)
	if err != nil {
		return 0, err
	}
	content, err := checkOrgDocument(key, doc)
	if err != nil {
		return 0, err
	}
	if doc.Kind == wire.OrgDocumentKind_ORG_MEMBER_ACCESS {
		if err := c.s.checkMemberAccessPublish(c.ctx, doc.Body); err != nil {
			return 0, err
		}
	}
	var targets []DeviceAddr
	if doc.Kind == wire.OrgDocumentKind_ORG_WIPE {
		acct, devs, err := c.lookup(r.Username)
		if err != nil {
			return 0, err
		}
		for _, d := range devs {
			if d.Addr.Device == r.DeviceId {
				targets = append(targets, d.Addr)
			}
		}
		if len(targets) == 0 {
			return 0, fmt.Errorf("%w: no device %d of %s", ErrNotFound, r.DeviceId, acct.Username)
		}
	} else if targets, err = c.s.orgDevices(c.ctx); err != nil {
		return 0, err
	}
	if err := c.s.keepOrgDocument(c.ctx, doc.Kind, r.Username, content); err != nil {
		return 0, err
	}
	if doc.Kind == wire.OrgDocumentKind_ORG_MEMBER_ACCESS {
		c.s.member.invalidate()
	}
	if err := c.s.fanout(c.ctx, c.dev, c.username, content, targets); err != nil {
		return 0, err
	}
	if err := c.s.notePublished(c.ctx, doc.Body, len(targets)); err != nil {
		return 0, err
	}
	c.s.log.Info("organization document published", "kind", doc.Kind.String(), "devices", len(targets), "by", c.dev.String())
	return len(targets), nil
}

// checkOrgDocumentShape refuses a document with no body, an oversized
// body, a malformed signature or an unknown kind (ErrBadRequest).
func checkOrgDocumentShape(doc *wire.OrgDocument) error {
	if doc == nil || len(doc.Body) == 0 || len(doc.Body) > maxOrgDocument || len(doc.Signature) != ed25519.SignatureSize {
		return badRequest("bad organization document")
	}
	if _, ok := orgDomains[doc.Kind]; !ok || doc.Kind == wire.OrgDocumentKind_ORG_INVITATION {
		return badRequest("unknown organization document kind")
	}
	return nil
}

// checkOrgDocument checks a published document against the org key and
// returns the encoding the relay fans out and keeps: only its kind, body
// and signature, whatever else the request carried.
func checkOrgDocument(key []byte, doc *wire.OrgDocument) ([]byte, error) {
	if err := checkOrgDocumentShape(doc); err != nil {
		return nil, err
	}
	domain := orgDomains[doc.Kind]
	if len(key) != ed25519.PublicKeySize || !ed25519.Verify(key, append([]byte(domain), doc.Body...), doc.Signature) {
		return nil, withReason(ErrForbidden, "not signed by the organization key")
	}
	content, err := proto.Marshal(&wire.OrgDocument{Kind: doc.Kind, Body: doc.Body, Signature: doc.Signature})
	if err != nil {
		return nil, fmt.Errorf("relay: encode org document: %w", err)
	}
	return content, nil
}

// checkWipeConfirm checks a wipe confirmation against the device's key.
func checkWipeConfirm(deviceKey []byte, r *wire.OrgWipeConfirmRequest) error {
	if len(r.GetOrderHash()) != 32 || len(r.GetSignature()) != ed25519.SignatureSize {
		return badRequest("bad wipe confirmation")
	}
	if len(deviceKey) != ed25519.PublicKeySize || !ed25519.Verify(deviceKey, append([]byte(orgWipeConfirmDomain), r.OrderHash...), r.Signature) {
		return ErrBadSignature
	}
	return nil
}

// decodeOrgDocument decodes a document as checkOrgDocument encoded it.
func decodeOrgDocument(b []byte) (*wire.OrgDocument, error) {
	var d wire.OrgDocument
	if err := proto.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("relay: stored org document: %w", err)
	}
	return &d, nil
}

// orgDevices lists every active device of every active account.
func (s *Server) orgDevices(ctx context.Context) ([]DeviceAddr, error) {
	accts, err := s.dir.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	var out []DeviceAddr
	for _, a := range accts {
		if a.Revoked {
			continue
		}
		devs, err := s.dir.Devices(ctx, a.ID, false)
		if err != nil {
			return nil, err
		}
		for _, d := range devs {
			out = append(out, d.Addr)
		}
	}
	return out, nil
}

// fanout stores content as an ORG_DOCUMENT envelope for every target, in
// batches, and notifies them.
func (s *Server) fanout(ctx context.Context, from DeviceAddr, fromName string, content []byte, targets []DeviceAddr) error {
	now := s.cfg.Now()
	for len(targets) > 0 {
		batch := targets[:min(len(targets), orgFanoutBatch)]
		targets = targets[len(batch):]
		send := &Send{Sender: from, MessageID: randomBytes(16), Timestamp: now, Envelopes: make([]Envelope, len(batch))}
		for i, t := range batch {
			e := &send.Envelopes[i]
			copy(e.ID[8:], randomBytes(8))
			e.Recipient, e.Sender, e.SenderDevice = t, fromName, from.Device
			e.Timestamp, e.Type, e.Content, e.MessageID = now, uint32(wire.EnvelopeType_ORG_DOCUMENT), content, send.MessageID
		}
		if _, err := s.mb.Append(ctx, send); err != nil {
			return err
		}
		s.metrics.stored.Add(uint64(len(send.Envelopes)))
		for i := range send.Envelopes {
			e := send.Envelopes[i : i+1]
			if err := s.bus.Notify(ctx, e[0].Recipient, e); err != nil {
				s.log.Warn("notifying recipient", "device", e[0].Recipient.String(), "err", err)
			}
		}
	}
	return nil
}

// orgWipeConfirm records a device's signed confirmation that it wipes
// itself, and deregisters it.
func (c *conn) orgWipeConfirm(r *wire.OrgWipeConfirmRequest) error {
	if len(r.GetOrderHash()) != 32 || len(r.GetSignature()) != ed25519.SignatureSize {
		return badRequest("bad wipe confirmation")
	}
	dev, err := c.s.dir.Device(c.ctx, c.dev)
	if err != nil {
		return err
	}
	if err := checkWipeConfirm(dev.DeviceKey, r); err != nil {
		return err
	}
	c.s.log.Info("device confirmed an organization wipe order", "device", c.dev.String(), "order", fmt.Sprintf("%x", r.OrderHash[:8]))
	if err := c.s.keepReceipt(c.ctx, c.dev, c.username, r.OrderHash, r.Signature, dev.DeviceKey); err != nil {
		return err
	}
	return c.removeSelf()
}

// removeSelf deregisters the connection's own device. The connection
// stays open until the device closes it, so that it gets the response.
func (c *conn) removeSelf() error {
	if err := c.s.dir.Revoke(c.ctx, c.dev, c.s.cfg.Now()); err != nil {
		return err
	}
	c.s.cache.invalidate(c.dev.Account)
	c.s.log.Info("device removed itself", "device", c.dev.String())
	return nil
}

// OrgFingerprint is the short form of an org public key that activation
// codes carry ("secret.fingerprint"): the first 16 bytes of its SHA-256,
// in hex (the same as client/org.Fingerprint).
func OrgFingerprint(pub []byte) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:16])
}

// keepOrgDocument stores the latest policy, and the latest certificate per
// username, for devices that missed the fan-out.
func (s *Server) keepOrgDocument(ctx context.Context, kind wire.OrgDocumentKind, username string, content []byte) error {
	ds, ok := s.dir.(OrgDocumentStore)
	if !ok {
		return nil
	}
	switch kind {
	case wire.OrgDocumentKind_ORG_POLICY, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, wire.OrgDocumentKind_ORG_RELEASE_APPROVAL:
		return ds.PutOrgDocument(ctx, kind, "", content)
	case wire.OrgDocumentKind_ORG_CERTIFICATE:
		u, err := NormalizeUsername(username)
		if err != nil {
			return badRequest("a certificate is published with the username it certifies")
		}
		return ds.PutOrgDocument(ctx, kind, u, content)
	}
	return nil
}

func (c *conn) orgDocuments(username string) ([]*wire.OrgDocument, error) {
	ds, ok := c.s.dir.(OrgDocumentStore)
	if !ok {
		return nil, nil
	}
	type want struct {
		kind    wire.OrgDocumentKind
		subject string
	}
	ws := []want{{wire.OrgDocumentKind_ORG_POLICY, ""}, {wire.OrgDocumentKind_ORG_MEMBER_ACCESS, ""}, {wire.OrgDocumentKind_ORG_RELEASE_APPROVAL, ""}}
	if username != "" {
		u, err := NormalizeUsername(username)
		if err != nil {
			return nil, ErrNotFound
		}
		ws = append(ws, want{wire.OrgDocumentKind_ORG_CERTIFICATE, u})
	}
	var out []*wire.OrgDocument
	for _, w := range ws {
		b, err := ds.OrgDocument(c.ctx, w.kind, w.subject)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		d, err := decodeOrgDocument(b)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}
