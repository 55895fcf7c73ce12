package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"sotto/orgcert"
)

// The organization's console (agent/admin.go) reads through these.

// IsOrgAdmin reports whether this device holds the organization's key
// (an admin's device: it signs invitations, notices, policies, wipe
// orders and certificates).
func (c *Client) IsOrgAdmin(ctx context.Context) (bool, error) {
	priv, err := c.adminKey(ctx)
	if errors.Is(err, ErrNotOrgAdmin) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	clear(priv)
	return true, nil
}

// UserDevices lists another user's devices as the relay lists them (ids
// and creation times; names are only the account's own to see).
func (c *Client) UserDevices(ctx context.Context, user string) ([]Device, error) {
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	list, err := conn.GetDevices(ctx, normalize(user))
	if err != nil {
		return nil, fmt.Errorf("client: devices of %s: %w", user, err)
	}
	out := make([]Device, 0, len(list.Devices))
	for _, d := range list.Devices {
		out = append(out, Device{ID: d.DeviceId, Created: time.UnixMilli(d.CreatedMs)})
	}
	return out, nil
}

// tblOrgInvited: the users this (admin) device invited, by username: the
// invitation's time, big endian milliseconds.
const tblOrgInvited = "org-invited"

func (c *Client) noteInvited(ctx context.Context, user string) {
	b := binary.BigEndian.AppendUint64(nil, uint64(c.opts.Now().UnixMilli()))
	if err := c.db.Put(ctx, tblOrgInvited, []byte(user), b); err != nil {
		c.log.Warn("keeping the record of an invitation", "err", err)
	}
}

// ConsoleMember is one member as the admin's device sees them.
type ConsoleMember struct {
	User string
	// Invited is when this device invited them (zero: not from here).
	Invited time.Time
	// Enrolled: the relay serves an identity key for them whose identity
	// certificate (from their invitation) verifies under the org key.
	Enrolled    bool
	IdentityKey []byte
	// Subscription is when the grant their identity certificate carries
	// ends; Renewed, when a membership certificate signed since (Certify)
	// ends, if any.
	Subscription time.Time
	Renewed      time.Time
}

// ConsoleMembers lists the users this device invited or holds a
// membership certificate for, each checked with the relay (connection
// needed): their identity key and its certificate.
func (c *Client) ConsoleMembers(ctx context.Context) ([]ConsoleMember, error) {
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	key, err := c.orgKey(ctx)
	if err != nil {
		return nil, err
	}
	byUser := map[string]*ConsoleMember{}
	get := func(u string) *ConsoleMember {
		if byUser[u] == nil {
			byUser[u] = &ConsoleMember{User: u}
		}
		return byUser[u]
	}
	get(c.acct.Username)
	inv, err := c.db.List(ctx, tblOrgInvited)
	if err != nil {
		return nil, err
	}
	for _, e := range inv {
		if len(e.Value) == 8 {
			get(string(e.Key)).Invited = time.UnixMilli(int64(binary.BigEndian.Uint64(e.Value)))
		}
	}
	ms, err := c.Members(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		get(m.User).Renewed = m.Expires
	}
	out := make([]ConsoleMember, 0, len(byUser))
	for _, m := range byUser {
		id, err := conn.GetIdentity(ctx, m.User)
		if err == nil {
			if v, err := orgcert.Verify(key, id.IdentityCertificate, m.User, id.IdentityKey); err == nil {
				m.Enrolled, m.IdentityKey = true, id.IdentityKey
				m.Subscription = time.UnixMilli(v.Grant.GetExpiresMs())
			}
		}
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b ConsoleMember) int { return strings.Compare(a.User, b.User) })
	return out, nil
}
