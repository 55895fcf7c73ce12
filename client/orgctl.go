package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"sotto/client/content"
	"sotto/client/org"
	"sotto/client/orgstate"
	"sotto/client/transport"
	"sotto/wire"
)

// The organization's control lives in package orgstate: the roots
// pinned at enrollment, the verification and application of the
// documents the org key signed, and the policy, notices and members they
// leave. This file is the facade's part: the events, the fetch of the
// relay's copies (syncOrg), the handling of a pushed document with its
// ack and receipt, and a verified wipe order's confirmation and wipe.

// Tables of the local store used by the organization's control.
const (
	tblOrg        = orgstate.Table
	tblOrgNotices = orgstate.TableNotices
	tblOrgCerts   = orgstate.TableCerts
)

// Events of the organization's control.
const (
	EventOrgNotice   EventKind = 100 + iota // Event.Notice: a verified notice from the organization
	EventOrgPolicy                          // a newer verified policy is in force (Client.OrgPolicy)
	EventOrgRejected                        // Event.Err: an organization document failed verification and was dropped
)

// Errors of the organization's control.
var (
	ErrNoOrg       = orgstate.ErrNoOrg
	ErrNotOrgAdmin = orgstate.ErrNotOrgAdmin
)

// Notice is a verified notice from the organization.
type Notice = orgstate.Notice

// Member is a verified membership certificate.
type Member = orgstate.Member

// getter is the part of the store (or a transaction) that reads a row.
type getter = orgstate.Getter

func getOpt(ctx context.Context, db getter, table, key string) ([]byte, error) {
	return orgstate.Get(ctx, db, table, key)
}

// OrgFingerprint returns the fingerprint of the org key this device is
// bound to ("" when none).
func (c *Client) OrgFingerprint(ctx context.Context) (string, error) {
	return orgstate.Fingerprint(ctx, c.db)
}

// orgKey returns the org public key pinned at enrollment or link.
func (c *Client) orgKey(ctx context.Context) (ed25519.PublicKey, error) {
	return orgstate.Key(ctx, c.db)
}

// policyVersion is the version of the policy in force (or of the floor).
func (c *Client) policyVersion(ctx context.Context) (uint64, error) {
	return orgstate.PolicyVersion(ctx, c.db)
}

// noticeHigh is the newest notice sequence this device knows.
func (c *Client) noticeHigh(ctx context.Context) (uint64, error) {
	return orgstate.NoticeHigh(ctx, c.db)
}

// OrgRejected counts the organization documents dropped because they
// failed verification.
func (c *Client) OrgRejected(ctx context.Context) (uint64, error) {
	return orgstate.Rejected(ctx, c.db)
}

// OrgPolicy returns the newest verified org policy in force, or nil when
// none was received (callers read nil as the defaults: see org.Policy's
// methods, which accept a nil receiver). Other features consult it.
func (c *Client) OrgPolicy(ctx context.Context) (*org.Policy, error) {
	return orgstate.Policy(ctx, c.db)
}

// policyIn is the org policy in force in db, nil read as the defaults
// (orgstate.PolicyIn).
func policyIn(ctx context.Context, db getter) *org.Policy { return orgstate.PolicyIn(ctx, db) }

// Notices lists the verified notices, oldest first.
func (c *Client) Notices(ctx context.Context) ([]Notice, error) {
	return orgstate.Notices(ctx, c.db)
}

// Members lists the verified membership certificates still valid.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	return orgstate.Members(ctx, c.db, c.opts.Now())
}

// IsMember reports whether user is a verified member of this device's
// organization: a valid certificate binds the user's name to the identity
// key this device knows for them (the own account's for oneself).
func (c *Client) IsMember(ctx context.Context, user string) (bool, error) {
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
	return orgstate.Covers(ctx, c.db, user, key, c.opts.Now())
}

// applyOrgDocument verifies doc and applies it (orgstate.Apply), and
// reports what changed.
func (c *Client) applyOrgDocument(ctx context.Context, doc *wire.OrgDocument, synced bool) (orgstate.Outcome, error) {
	self := org.Enrollment{Username: c.acct.Username, DeviceID: c.acct.DeviceID,
		RegistrationID: c.acct.RegistrationID, IdentityKey: c.IdentityKey()}
	r, err := orgstate.Apply(ctx, c.db, doc, synced, self, c.opts.Now())
	if r.Notice != nil {
		c.emit(Event{Kind: EventOrgNotice, Notice: r.Notice})
	}
	if r.Policy != nil {
		if err := c.db.SetWipeAfter(r.Policy.UnlockLimit()); err != nil {
			c.log.Warn("applying the failed-unlock limit", "err", err)
		}
		c.emit(Event{Kind: EventOrgPolicy})
	}
	return r.Outcome, err
}

func (c *Client) rejectOrg(ctx context.Context, err error) {
	if cerr := orgstate.CountRejected(ctx, c.db); cerr != nil {
		c.log.Warn("counting a rejected organization document", "err", cerr)
	}
	c.log.Warn("organization document rejected", "err", err)
	c.emit(Event{Kind: EventOrgRejected, Err: err})
}

// handleOrgEnvelope processes an ORG_DOCUMENT envelope; it reports whether
// the receive loop must stop (the device was wiped).
func (c *Client) handleOrgEnvelope(ctx context.Context, conn *transport.Conn, env *wire.Envelope, noAck bool) (stop bool) {
	doc, err := org.DecodeDocument(env.Content)
	outcome := orgstate.Refused
	if err == nil {
		outcome, err = c.applyOrgDocument(ctx, doc, false)
	}
	switch outcome {
	case orgstate.Transient:
		c.log.Warn("organization document left queued", "err", err)
		return false
	case orgstate.Refused:
		c.rejectOrg(ctx, err)
	}
	if !noAck {
		conn.AckLater(env.Id)
	}
	if outcome == orgstate.Applied && doc.Kind != wire.OrgDocumentKind_ORG_WIPE {
		c.sendOrgReceipt(ctx, conn, doc.Body)
	}
	if outcome != orgstate.Wipe {
		return false
	}
	msg, hash := org.ConfirmMessage(doc.Body)
	c.cryptoMu.Lock()
	sig := ed25519.Sign(c.acct.PrivateDeviceKey(), msg)
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
		switch outcome, err := c.applyOrgDocument(ctx, d, true); outcome {
		case orgstate.Refused:
			c.rejectOrg(ctx, err)
		case orgstate.Transient:
			c.log.Info("organization document not applied", "err", err)
		}
	}
}

// ---- subscription ----

// noteSubscription keeps the subscription end the relay reported at
// authentication, so that it can be shown offline too.
func (c *Client) noteSubscription(ctx context.Context, expiresMs int64) {
	if err := orgstate.NoteSubscription(ctx, c.db, expiresMs); err != nil {
		c.log.Warn("keeping the subscription end", "err", err)
	}
}

// SubscriptionExpires returns the end of the account's subscription as the
// relay last reported it (zero: not known yet).
func (c *Client) SubscriptionExpires(ctx context.Context) (time.Time, error) {
	return orgstate.SubscriptionExpires(ctx, c.db)
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
var ErrForbiddenByPolicy = orgstate.ErrForbiddenByPolicy

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

// callSignalAllowed: see orgstate.CallSignalAllowed.
func callSignalAllowed(ctx context.Context, db getter, s *content.CallSignal) bool {
	return orgstate.CallSignalAllowed(ctx, db, s)
}

// clampTimer: see orgstate.ClampTimer.
func clampTimer(ctx context.Context, db getter, secs uint32) uint32 {
	return orgstate.ClampTimer(ctx, db, secs)
}

// memberAccessKey is the organization's member access key, or nil
// (orgstate.MemberAccess): it seals the first messages to a contact whose
// profile key is not known yet.
func (c *Client) memberAccessKey(ctx context.Context) []byte {
	m, err := orgstate.MemberAccess(ctx, c.db)
	if err != nil {
		c.log.Warn("member access key unreadable", "err", err)
		return nil
	}
	if m == nil || len(m.AccessKey) != wire.AccessKeySize {
		return nil
	}
	return m.AccessKey
}

// PublishMemberAccess makes a new random member access key, signs it with
// the org key (this device must hold it) and has the relay keep it and
// deliver it to every device. Publishing again rotates the key: do it when
// a member leaves. It returns how many devices it was queued for.
func (c *Client) PublishMemberAccess(ctx context.Context) (int, error) {
	cur, err := orgstate.MemberAccess(ctx, c.db)
	if err != nil {
		return 0, err
	}
	m := &wire.MemberAccess{Version: cur.GetVersion() + 1, IssuedMs: c.opts.Now().UnixMilli(), AccessKey: make([]byte, wire.AccessKeySize)}
	if last, err := orgstate.U64(ctx, c.db, orgstate.KeyMemberPublished); err != nil {
		return 0, err
	} else if last >= m.Version {
		m.Version = last + 1
	}
	if _, err := rand.Read(m.AccessKey); err != nil {
		return 0, fmt.Errorf("client: member access key: %w", err)
	}
	n, err := c.publish(ctx, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, m, "", 0)
	if err != nil {
		return 0, err
	}
	return n, orgstate.PutU64(ctx, c.db, orgstate.KeyMemberPublished, m.Version)
}
