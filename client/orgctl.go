package client

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/wire"
)

// The organization's control. A device enrolled with a code that carries
// the org key's fingerprint ("secret.fingerprint") is bound to that
// organization: it fetches the org public key from the relay once, refuses
// it unless its fingerprint matches, and from then on obeys only documents
// signed by it — notices, the device policy, wipe orders — and trusts
// membership certificates signed by it. Whatever fails verification is
// dropped and counted; the device and its data are left as they were.

// Tables of the local store used by the organization's control.
const (
	tblOrg        = "org"         // fingerprint, key, policy, rejected, admin-key
	tblOrgNotices = "org-notices" // by sequence number
	tblOrgCerts   = "org-certs"   // by username
)

// Events of the organization's control.
const (
	EventOrgNotice   EventKind = 100 + iota // Event.Notice: a verified notice from the organization
	EventOrgPolicy                          // a newer verified policy is in force (Client.OrgPolicy)
	EventOrgRejected                        // Event.Err: an organization document failed verification and was dropped
)

// Errors of the organization's control.
var (
	ErrNoOrg       = errors.New("client: this device is not bound to an organization")
	ErrNotOrgAdmin = errors.New("client: this device does not hold the organization key")
)

// Notice is a verified notice from the organization.
type Notice struct {
	Seq      uint64    `json:"seq"`
	Issued   time.Time `json:"issued"`
	Received time.Time `json:"received"`
	Text     string    `json:"text"`
}

// Member is a verified membership certificate.
type Member struct {
	User        string    `json:"user"`
	IdentityKey []byte    `json:"identity_key"`
	Expires     time.Time `json:"expires"`
}

// getter is the part of the store (or a transaction) that reads a row.
type getter interface {
	Get(ctx context.Context, table string, key []byte) ([]byte, error)
}

func getOpt(ctx context.Context, db getter, table, key string) ([]byte, error) {
	b, err := db.Get(ctx, table, []byte(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// OrgFingerprint returns the fingerprint of the org key this device is
// bound to ("" when none).
func (c *Client) OrgFingerprint(ctx context.Context) (string, error) {
	k, err := getOpt(ctx, c.db, tblOrg, orgKeyKey)
	if err != nil || k == nil {
		return "", err
	}
	return org.Fingerprint(k), nil
}

// orgKey returns the org public key pinned at enrollment or link.
func (c *Client) orgKey(ctx context.Context) (ed25519.PublicKey, error) {
	k, err := getOpt(ctx, c.db, tblOrg, orgKeyKey)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, ErrNoOrg
	}
	return k, nil
}

// policyVersion is the version of the policy in force (or of the floor).
func (c *Client) policyVersion(ctx context.Context) (uint64, error) {
	p, err := c.OrgPolicy(ctx)
	if err != nil {
		return 0, err
	}
	floor, err := getU64(ctx, c.db, orgPolicyMinKey)
	if err != nil {
		return 0, err
	}
	// An admin's device knows what it published before it comes back.
	published, err := getU64(ctx, c.db, "policy-published")
	return max(p.GetVersion(), floor, published), err
}

// noticeHigh is the newest notice sequence this device knows: the floor
// from its invitation, or a notice received since.
func (c *Client) noticeHigh(ctx context.Context) (uint64, error) {
	high, err := getU64(ctx, c.db, orgNoticeFloor)
	if err != nil {
		return 0, err
	}
	published, err := getU64(ctx, c.db, "notice-published")
	if err != nil {
		return 0, err
	}
	high = max(high, published)
	ns, err := c.Notices(ctx)
	if err != nil {
		return 0, err
	}
	for _, n := range ns {
		high = max(high, n.Seq)
	}
	return high, nil
}

// OrgRejected counts the organization documents dropped because they
// failed verification.
func (c *Client) OrgRejected(ctx context.Context) (uint64, error) {
	b, err := getOpt(ctx, c.db, tblOrg, "rejected")
	if err != nil || len(b) != 8 {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

func (c *Client) countRejected(ctx context.Context) {
	n, err := c.OrgRejected(ctx)
	if err == nil {
		err = c.db.Put(ctx, tblOrg, []byte("rejected"), binary.BigEndian.AppendUint64(nil, n+1))
	}
	if err != nil {
		c.log.Warn("counting a rejected organization document", "err", err)
	}
}

// OrgPolicy returns the newest verified org policy in force, or nil when
// none was received (callers read nil as the defaults: see org.Policy's
// methods, which accept a nil receiver). Other features consult it.
func (c *Client) OrgPolicy(ctx context.Context) (*org.Policy, error) {
	b, err := getOpt(ctx, c.db, tblOrg, "policy")
	if err != nil || b == nil {
		return nil, err
	}
	var p org.Policy
	if err := proto.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("client: stored policy: %w", err)
	}
	return &p, nil
}

// Notices lists the verified notices, oldest first.
func (c *Client) Notices(ctx context.Context) ([]Notice, error) {
	entries, err := c.db.List(ctx, tblOrgNotices)
	if err != nil {
		return nil, err
	}
	out := make([]Notice, 0, len(entries))
	for _, e := range entries {
		var n Notice
		if err := json.Unmarshal(e.Value, &n); err != nil {
			return nil, fmt.Errorf("client: stored notice: %w", err)
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Notice) int { return cmpU64(a.Seq, b.Seq) })
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Members lists the verified membership certificates still valid.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	entries, err := c.db.List(ctx, tblOrgCerts)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	var out []Member
	for _, e := range entries {
		var cert org.Certificate
		if err := proto.Unmarshal(e.Value, &cert); err != nil {
			return nil, fmt.Errorf("client: stored certificate: %w", err)
		}
		if cert.Covers(cert.Username, cert.IdentityKey, now) {
			out = append(out, Member{User: cert.Username, IdentityKey: cert.IdentityKey, Expires: time.UnixMilli(cert.ExpiresMs)})
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.User, b.User) })
	return out, nil
}

// IsMember reports whether user is a verified member of this device's
// organization: a valid certificate binds the user's name to the identity
// key this device knows for them (the own account's for oneself).
func (c *Client) IsMember(ctx context.Context, user string) (bool, error) {
	b, err := getOpt(ctx, c.db, tblOrgCerts, user)
	if err != nil || b == nil {
		return false, err
	}
	var cert org.Certificate
	if err := proto.Unmarshal(b, &cert); err != nil {
		return false, fmt.Errorf("client: stored certificate: %w", err)
	}
	var key []byte
	if user == c.acct.Username {
		key = c.IdentityKey()
	} else {
		r, err := loadIdentity(ctx, c.db, user)
		if err != nil || r == nil {
			return false, err
		}
		key = r.Key
	}
	return cert.Covers(user, key, c.opts.Now()), nil
}

// orgOutcome is what applying one org document came to.
type orgOutcome int

const (
	orgApplied   orgOutcome = iota // verified and applied (or already known)
	orgRejected                    // failed verification: drop and count
	orgTransient                   // not processed (store or relay failure): retry later
	orgWipe                        // a verified wipe order for this device
)

// applyOrgDocument verifies doc and applies it. synced marks documents
// fetched from the relay's store rather than pushed: seen again on every
// connection, their being stale is no attack.
func (c *Client) applyOrgDocument(ctx context.Context, conn *transport.Conn, doc *wire.OrgDocument, synced bool) (orgOutcome, error) {
	key, err := c.orgKey(ctx)
	switch {
	case errors.Is(err, ErrNoOrg):
		return orgRejected, err
	case err != nil:
		return orgTransient, err
	}
	switch doc.Kind {
	case wire.OrgDocumentKind_ORG_NOTICE:
		n, err := org.OpenNotice(key, doc)
		if err != nil {
			return orgRejected, err
		}
		floor, err := getU64(ctx, c.db, orgNoticeFloor)
		if err != nil {
			return orgTransient, err
		}
		if n.Seq <= floor {
			// Issued before this device joined: an old notice replayed
			// into a new member's mailbox is not news.
			return orgRejected, fmt.Errorf("%w: notice %d predates this device's enrollment", org.ErrStale, n.Seq)
		}
		rec := Notice{Seq: n.Seq, Issued: time.UnixMilli(n.IssuedMs), Received: c.opts.Now(), Text: n.Text}
		seqKey := binary.BigEndian.AppendUint64(nil, n.Seq)
		old, err := getOpt(ctx, c.db, tblOrgNotices, string(seqKey))
		if err != nil {
			return orgTransient, err
		}
		if old == nil {
			b, _ := json.Marshal(rec)
			if err := c.db.Put(ctx, tblOrgNotices, seqKey, b); err != nil {
				return orgTransient, err
			}
			c.emit(Event{Kind: EventOrgNotice, Notice: &rec})
		}
	case wire.OrgDocumentKind_ORG_POLICY:
		p, err := org.OpenPolicy(key, doc)
		if err != nil {
			return orgRejected, err
		}
		cur, err := c.OrgPolicy(ctx)
		if err != nil {
			return orgTransient, err
		}
		floor, err := getU64(ctx, c.db, orgPolicyMinKey)
		if err != nil {
			return orgTransient, err
		}
		if p.Version < floor {
			// Older than the policy in force when this device was
			// invited: a rollback, whoever serves it.
			return orgRejected, fmt.Errorf("%w: policy version %d, invited under %d", org.ErrStale, p.Version, floor)
		}
		if cur != nil && p.Version <= cur.Version {
			if synced || p.Version == cur.Version && proto.Equal(p, cur) {
				// Already in force: fetched at connection, then pushed.
				return orgApplied, nil
			}
			return orgRejected, fmt.Errorf("%w: policy version %d, in force %d", org.ErrStale, p.Version, cur.Version)
		}
		if err := c.db.Put(ctx, tblOrg, []byte("policy"), doc.Body); err != nil {
			return orgTransient, err
		}
		if err := c.db.SetWipeAfter(p.UnlockLimit()); err != nil {
			c.log.Warn("applying the failed-unlock limit", "err", err)
		}
		c.emit(Event{Kind: EventOrgPolicy})
	case wire.OrgDocumentKind_ORG_CERTIFICATE:
		cert, err := org.OpenCertificate(key, doc)
		if err != nil {
			return orgRejected, err
		}
		old, err := getOpt(ctx, c.db, tblOrgCerts, cert.Username)
		if err != nil {
			return orgTransient, err
		}
		if old != nil {
			var prev org.Certificate
			if proto.Unmarshal(old, &prev) == nil && prev.IssuedMs >= cert.IssuedMs {
				return orgApplied, nil // not newer
			}
		}
		if err := c.db.Put(ctx, tblOrgCerts, []byte(cert.Username), doc.Body); err != nil {
			return orgTransient, err
		}
	case wire.OrgDocumentKind_ORG_MEMBER_ACCESS:
		return c.applyMemberAccess(ctx, key, doc, synced)
	case wire.OrgDocumentKind_ORG_RELEASE_APPROVAL:
		return c.applyReleaseApproval(ctx, key, doc) // releases.go
	case wire.OrgDocumentKind_ORG_WIPE:
		w, err := org.OpenWipe(key, doc)
		if err != nil {
			return orgRejected, err
		}
		self := org.Enrollment{Username: c.acct.Username, DeviceID: c.acct.DeviceID,
			RegistrationID: c.acct.RegistrationID, IdentityKey: c.IdentityKey()}
		if err := w.Targets(self, c.opts.Now()); err != nil {
			return orgRejected, err
		}
		return orgWipe, nil
	default:
		return orgRejected, org.ErrWrongKind
	}
	return orgApplied, nil
}

func (c *Client) rejectOrg(ctx context.Context, err error) {
	c.countRejected(ctx)
	c.log.Warn("organization document rejected", "err", err)
	c.emit(Event{Kind: EventOrgRejected, Err: err})
}

// handleOrgEnvelope processes an ORG_DOCUMENT envelope; it reports whether
// the receive loop must stop (the device was wiped).
func (c *Client) handleOrgEnvelope(ctx context.Context, conn *transport.Conn, env *wire.Envelope, noAck bool) (stop bool) {
	doc, err := org.DecodeDocument(env.Content)
	outcome := orgRejected
	if err == nil {
		outcome, err = c.applyOrgDocument(ctx, conn, doc, false)
	}
	switch outcome {
	case orgTransient:
		c.log.Warn("organization document left queued", "err", err)
		return false
	case orgRejected:
		c.rejectOrg(ctx, err)
	}
	if !noAck {
		conn.AckLater(env.Id)
	}
	if outcome == orgApplied && doc.Kind != wire.OrgDocumentKind_ORG_WIPE {
		c.sendOrgReceipt(ctx, conn, doc.Body)
	}
	if outcome != orgWipe {
		return false
	}
	msg, hash := org.ConfirmMessage(doc.Body)
	c.cryptoMu.Lock()
	sig := ed25519.Sign(c.acct.deviceKey(), msg)
	c.cryptoMu.Unlock()
	if _, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgWipeConfirm{
		OrgWipeConfirm: &wire.OrgWipeConfirmRequest{OrderHash: hash, Signature: sig}}}); err != nil {
		c.log.Warn("wipe confirmation not delivered; wiping anyway", "err", err)
	}
	c.wipeSelf(0)
	return true
}

// syncOrg fetches, on connecting, what the relay keeps of the
// organization's documents (the latest policy, this account's
// certificate), for a device that missed their fan-out. Failures only
// delay it to the next connection.
func (c *Client) syncOrg(ctx context.Context, conn *transport.Conn) {
	if fp, err := c.OrgFingerprint(ctx); err != nil || fp == "" {
		return
	}
	resp, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgDocuments{
		OrgDocuments: &wire.OrgDocumentsRequest{Username: c.acct.Username}}})
	if err != nil {
		c.log.Info("organization documents not fetched", "err", err)
		return
	}
	for _, d := range resp.GetOrgDocuments().GetDocuments() {
		if d.Kind != wire.OrgDocumentKind_ORG_POLICY && d.Kind != wire.OrgDocumentKind_ORG_CERTIFICATE && d.Kind != wire.OrgDocumentKind_ORG_MEMBER_ACCESS &&
			d.Kind != wire.OrgDocumentKind_ORG_RELEASE_APPROVAL {
			c.rejectOrg(ctx, fmt.Errorf("%w: %v from the relay's store", org.ErrWrongKind, d.Kind))
			continue
		}
		switch outcome, err := c.applyOrgDocument(ctx, conn, d, true); outcome {
		case orgRejected:
			c.rejectOrg(ctx, err)
		case orgTransient:
			c.log.Info("organization document not applied", "err", err)
		}
	}
}

// ---- subscription ----

// noteSubscription keeps the subscription end the relay reported at
// authentication, so that it can be shown offline too.
func (c *Client) noteSubscription(ctx context.Context, expiresMs int64) {
	if expiresMs <= 0 {
		return
	}
	if err := c.db.Put(ctx, tblOrg, []byte("subscription-expires"), binary.BigEndian.AppendUint64(nil, uint64(expiresMs))); err != nil {
		c.log.Warn("keeping the subscription end", "err", err)
	}
}

// SubscriptionExpires returns the end of the account's subscription as the
// relay last reported it (zero: not known yet).
func (c *Client) SubscriptionExpires(ctx context.Context) (time.Time, error) {
	b, err := getOpt(ctx, c.db, tblOrg, "subscription-expires")
	if err != nil || len(b) != 8 {
		return time.Time{}, err
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b))), nil
}

// SubscriptionWarning returns the warning to show about the subscription's
// end, 14 and 3 days before it and after it ("" when none).
func (c *Client) SubscriptionWarning(ctx context.Context) (string, error) {
	exp, err := c.SubscriptionExpires(ctx)
	if err != nil {
		return "", err
	}
	return org.SubscriptionWarning(exp, c.opts.Now()), nil
}

// deviceOrderValidity bounds how long a wipe order from an own device
// (DeviceOrder) stays valid.
const deviceOrderValidity = 7 * 24 * time.Hour

// ---- the policy, for other features ----

// ErrForbiddenByPolicy reports that the organization's policy in force
// does not allow what was asked.
var ErrForbiddenByPolicy = errors.New("client: not allowed by the organization's policy")

// PolicyFeature names what the org policy may forbid.
type PolicyFeature int

// Features the org policy governs.
const (
	FeatureAttachments PolicyFeature = iota + 1
	FeatureCalls
)

// AllowedByPolicy returns ErrForbiddenByPolicy when the org policy in
// force forbids f (no policy: everything is allowed).
func (c *Client) AllowedByPolicy(ctx context.Context, f PolicyFeature) error {
	p, err := c.OrgPolicy(ctx)
	if err != nil {
		return err
	}
	ok := true
	switch f {
	case FeatureAttachments:
		ok = p.AttachmentsAllowed()
	case FeatureCalls:
		ok = p.CallsAllowed()
	}
	if !ok {
		return ErrForbiddenByPolicy
	}
	return nil
}

// AllowedDisappearing returns ErrForbiddenByPolicy when a disappearing
// message timer of d (0: off) is outside the org policy's range.
func (c *Client) AllowedDisappearing(ctx context.Context, d time.Duration) error {
	p, err := c.OrgPolicy(ctx)
	if err != nil {
		return err
	}
	if !p.AllowsDisappearing(d) {
		return fmt.Errorf("%w: disappearing timer %v", ErrForbiddenByPolicy, d)
	}
	return nil
}
