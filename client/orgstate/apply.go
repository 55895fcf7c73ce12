package orgstate

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/wire"
)

// Outcome is what applying one org document came to.
type Outcome int

// Outcomes of Apply.
const (
	Applied   Outcome = iota // verified and applied (or already known)
	Refused                  // failed verification: drop and count
	Transient                // not processed (store failure): retry later
	Wipe                     // a verified wipe order for this device
)

// Result is what Apply did, for the caller to report.
type Result struct {
	Outcome Outcome
	// Notice is a new notice, kept.
	Notice *Notice
	// Policy is a newer policy, now in force.
	Policy *org.Policy
}

// Apply verifies doc against the pinned org key and applies it. synced
// marks documents fetched from the relay's store rather than pushed: seen
// again on every connection, their being stale is no attack. self is this
// device, as a wipe order names it.
func Apply(ctx context.Context, db KV, doc *wire.OrgDocument, synced bool, self org.Enrollment, now time.Time) (Result, error) {
	key, err := Key(ctx, db)
	switch {
	case errors.Is(err, ErrNoOrg):
		return Result{Outcome: Refused}, err
	case err != nil:
		return Result{Outcome: Transient}, err
	}
	switch doc.Kind {
	case wire.OrgDocumentKind_ORG_NOTICE:
		return applyNotice(ctx, db, key, doc, now)
	case wire.OrgDocumentKind_ORG_POLICY:
		return applyPolicy(ctx, db, key, doc, synced)
	case wire.OrgDocumentKind_ORG_CERTIFICATE:
		cert, err := org.OpenCertificate(key, doc)
		if err != nil {
			return Result{Outcome: Refused}, err
		}
		old, err := Get(ctx, db, TableCerts, cert.Username)
		if err != nil {
			return Result{Outcome: Transient}, err
		}
		if old != nil {
			var prev org.Certificate
			if proto.Unmarshal(old, &prev) == nil && prev.IssuedMs >= cert.IssuedMs {
				return Result{Outcome: Applied}, nil // not newer
			}
		}
		if err := db.Put(ctx, TableCerts, []byte(cert.Username), doc.Body); err != nil {
			return Result{Outcome: Transient}, err
		}
	case wire.OrgDocumentKind_ORG_MEMBER_ACCESS:
		return applyMemberAccess(ctx, db, key, doc, synced)
	case wire.OrgDocumentKind_ORG_RELEASE_APPROVAL:
		return applyReleaseApproval(ctx, db, key, doc)
	case wire.OrgDocumentKind_ORG_WIPE:
		w, err := org.OpenWipe(key, doc)
		if err != nil {
			return Result{Outcome: Refused}, err
		}
		if err := w.Targets(self, now); err != nil {
			return Result{Outcome: Refused}, err
		}
		return Result{Outcome: Wipe}, nil
	default:
		return Result{Outcome: Refused}, org.ErrWrongKind
	}
	return Result{Outcome: Applied}, nil
}

func applyNotice(ctx context.Context, db KV, key ed25519.PublicKey, doc *wire.OrgDocument, now time.Time) (Result, error) {
	n, err := org.OpenNotice(key, doc)
	if err != nil {
		return Result{Outcome: Refused}, err
	}
	floor, err := U64(ctx, db, keyNoticeFloor)
	if err != nil {
		return Result{Outcome: Transient}, err
	}
	if n.Seq <= floor {
		// Issued before this device joined: an old notice replayed
		// into a new member's mailbox is not news.
		return Result{Outcome: Refused}, fmt.Errorf("%w: notice %d predates this device's enrollment", org.ErrStale, n.Seq)
	}
	rec := Notice{Seq: n.Seq, Issued: time.UnixMilli(n.IssuedMs), Received: now, Text: n.Text}
	seqKey := binary.BigEndian.AppendUint64(nil, n.Seq)
	old, err := Get(ctx, db, TableNotices, string(seqKey))
	if err != nil {
		return Result{Outcome: Transient}, err
	}
	if old != nil {
		return Result{Outcome: Applied}, nil
	}
	b, _ := json.Marshal(rec)
	if err := db.Put(ctx, TableNotices, seqKey, b); err != nil {
		return Result{Outcome: Transient}, err
	}
	return Result{Outcome: Applied, Notice: &rec}, nil
}

func applyPolicy(ctx context.Context, db KV, key ed25519.PublicKey, doc *wire.OrgDocument, synced bool) (Result, error) {
	p, err := org.OpenPolicy(key, doc)
	if err != nil {
		return Result{Outcome: Refused}, err
	}
	cur, err := Policy(ctx, db)
	if err != nil {
		return Result{Outcome: Transient}, err
	}
	floor, err := U64(ctx, db, keyPolicyMin)
	if err != nil {
		return Result{Outcome: Transient}, err
	}
	if p.Version < floor {
		// Older than the policy in force when this device was invited:
		// a rollback, whoever serves it.
		return Result{Outcome: Refused}, fmt.Errorf("%w: policy version %d, invited under %d", org.ErrStale, p.Version, floor)
	}
	if cur != nil && p.Version <= cur.Version {
		if synced || p.Version == cur.Version && proto.Equal(p, cur) {
			// Already in force: fetched at connection, then pushed.
			return Result{Outcome: Applied}, nil
		}
		return Result{Outcome: Refused}, fmt.Errorf("%w: policy version %d, in force %d", org.ErrStale, p.Version, cur.Version)
	}
	if err := db.Put(ctx, Table, []byte(KeyPolicy), doc.Body); err != nil {
		return Result{Outcome: Transient}, err
	}
	return Result{Outcome: Applied, Policy: p}, nil
}

// The organization's member access key (wire.MemberAccess): one access
// key for every member, published by the org admin under the org key. A
// device that holds it sends sealed to a contact whose profile key it
// does not know yet, so that even the first message does not name its
// sender. It proves membership, not identity: the relay accepts it for
// any account. Only a key the org signed is used, so that a relay cannot
// hand each device a key of its own and tell senders apart by it.

// applyMemberAccess keeps a verified member access document when it is
// newer than the one kept.
func applyMemberAccess(ctx context.Context, db KV, key ed25519.PublicKey, doc *wire.OrgDocument, synced bool) (Result, error) {
	m, err := org.OpenMemberAccess(key, doc)
	if err != nil {
		return Result{Outcome: Refused}, err
	}
	cur, err := MemberAccess(ctx, db)
	if err != nil {
		return Result{Outcome: Transient}, err
	}
	if cur != nil && m.Version <= cur.Version {
		if synced || proto.Equal(m, cur) {
			return Result{Outcome: Applied}, nil // already kept: fetched at connection, then pushed
		}
		return Result{Outcome: Refused}, fmt.Errorf("%w: member access version %d, kept %d", org.ErrStale, m.Version, cur.Version)
	}
	if err := db.Put(ctx, Table, []byte(keyMemberAccess), doc.Body); err != nil {
		return Result{Outcome: Transient}, err
	}
	return Result{Outcome: Applied}, nil
}

// applyReleaseApproval keeps a verified release approval when it is newer
// than the one in force (the organization's half of the two-person rule
// for updates, package release).
func applyReleaseApproval(ctx context.Context, db KV, key ed25519.PublicKey, doc *wire.OrgDocument) (Result, error) {
	a, err := org.OpenReleaseApproval(key, doc)
	if err != nil {
		return Result{Outcome: Refused}, err
	}
	cur, err := ReleaseApproval(ctx, db)
	if err != nil {
		return Result{Outcome: Transient}, err
	}
	if cur != nil && a.IssuedMs <= cur.IssuedMs {
		// Older or the same: kept already, or a replay of one the org
		// has since replaced. Never an error: synced copies repeat.
		return Result{Outcome: Applied}, nil
	}
	if err := db.Put(ctx, Table, []byte(keyReleaseApproval), doc.Body); err != nil {
		return Result{Outcome: Transient}, err
	}
	return Result{Outcome: Applied}, nil
}
