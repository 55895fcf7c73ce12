package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/wire"
)

// The organization's member access key (wire.MemberAccess): one access key
// for every member, published by the org admin under the org key. A
// device that holds it sends sealed to a contact whose profile key it does
// not know yet, so that even the first message does not name its sender.
// It proves membership, not identity: the relay accepts it for any account.
// Only a key the org signed is used, so that a relay cannot hand each
// device a key of its own and tell senders apart by it.

// Keys of the org table (tblOrg) for the member access key.
var (
	keyMemberAccess       = []byte("member-access")   // the kept document's body
	memberAccessPublished = "member-access-published" // the last version published from here
)

// applyMemberAccess keeps a verified member access document when it is
// newer than the one kept.
func (c *Client) applyMemberAccess(ctx context.Context, key ed25519.PublicKey, doc *wire.OrgDocument, synced bool) (orgOutcome, error) {
	m, err := org.OpenMemberAccess(key, doc)
	if err != nil {
		return orgRejected, err
	}
	cur, err := c.memberAccess(ctx)
	if err != nil {
		return orgTransient, err
	}
	if cur != nil && m.Version <= cur.Version {
		if synced || proto.Equal(m, cur) {
			return orgApplied, nil // already kept: fetched at connection, then pushed
		}
		return orgRejected, fmt.Errorf("%w: member access version %d, kept %d", org.ErrStale, m.Version, cur.Version)
	}
	if err := c.db.Put(ctx, tblOrg, keyMemberAccess, doc.Body); err != nil {
		return orgTransient, err
	}
	return orgApplied, nil
}

// memberAccess returns the member access document kept (verified when it
// was applied), or nil.
func (c *Client) memberAccess(ctx context.Context) (*wire.MemberAccess, error) {
	b, err := getOpt(ctx, c.db, tblOrg, string(keyMemberAccess))
	if err != nil || b == nil {
		return nil, err
	}
	var m wire.MemberAccess
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("client: member access: %w", err)
	}
	return &m, nil
}

// memberAccessKey is the organization's member access key, or nil.
func (c *Client) memberAccessKey(ctx context.Context) []byte {
	m, err := c.memberAccess(ctx)
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
	cur, err := c.memberAccess(ctx)
	if err != nil {
		return 0, err
	}
	m := &wire.MemberAccess{Version: cur.GetVersion() + 1, IssuedMs: c.opts.Now().UnixMilli(), AccessKey: make([]byte, wire.AccessKeySize)}
	if last, err := getU64(ctx, c.db, memberAccessPublished); err != nil {
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
	return n, c.db.Put(ctx, tblOrg, []byte(memberAccessPublished), binary.BigEndian.AppendUint64(nil, m.Version))
}
