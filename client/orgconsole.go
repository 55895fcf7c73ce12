package client

import (
	"context"
	"errors"
	"fmt"
	"time"
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
