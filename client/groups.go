package client

import (
	"context"
	"errors"
	"fmt"

	"sotto/client/groups"
	"sotto/client/orgstate"
	"sotto/client/transport"
)

// groupsState holds the device's group manager, made on first use.
type groupsState struct {
	m *groups.Manager
}

// groupSelf is this device as client/groups needs it.
func (c *Client) groupSelf(ctx context.Context) (groups.Self, error) {
	orgKey, err := getOpt(ctx, c.db, tblOrg, orgstate.KeyOrgKey)
	if err != nil {
		return groups.Self{}, err
	}
	if orgKey == nil {
		return groups.Self{}, ErrNoOrg
	}
	cert, err := c.IdentityCertificate(ctx)
	if err != nil {
		return groups.Self{}, err
	}
	if cert == nil {
		return groups.Self{}, fmt.Errorf("%w: this account has no identity certificate to join groups with", ErrNotCertified)
	}
	return groups.Self{Username: c.acct.Username, DeviceID: c.acct.DeviceID, Identity: c.identity, Certificate: cert, OrgKey: orgKey}, nil
}

// replenishKeyPackages keeps this device's MLS KeyPackages stocked on the
// relay (like prekeys), so that others can add it to groups; Connect runs
// it on conn before anything else uses the connection.
func (c *Client) replenishKeyPackages(ctx context.Context, conn *transport.Conn) error {
	self, err := c.groupSelf(ctx)
	if err != nil {
		return err
	}
	_, err = groups.New(func() (groups.Relay, error) { return conn, nil }, c.db, self, groups.Options{Logger: c.log}).RefillKeyPackages(ctx)
	return err
}

// Groups returns this device's group chats (package client/groups), on
// the current relay connection. onEvent, when not nil, is told about
// joins, removals and refused members; a refused member (a leaf that is
// not an org-certified identity) also raises an uncertified-key alarm.
// The first call's onEvent is the one kept.
func (c *Client) Groups(ctx context.Context, onEvent func(groups.Event)) (*groups.Manager, error) {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	if c.groups.m != nil {
		return c.groups.m, nil
	}
	self, err := c.groupSelf(ctx)
	if err != nil {
		return nil, err
	}
	relay := func() (groups.Relay, error) {
		conn, err := c.connection()
		if err != nil {
			return nil, err
		}
		return conn, nil
	}
	receipts := func(ctx context.Context) bool {
		s, err := loadSettings(ctx, c.db)
		return err == nil && s.GroupReceipts
	}
	c.groups.m = groups.New(relay, c.db, self, groups.Options{Logger: c.log, CheckUser: c.checkGroupUser, Receipts: receipts, NoForkCheck: c.opts.NoGroupForkCheck, NoQuarantine: c.opts.NoGroupQuarantine, OnEvent: func(e groups.Event) {
		if e.Kind == groups.EventRefused {
			c.alarm(&TransparencyAlarm{Kind: AlarmUncertifiedKey, Detail: e.Detail})
		}
		if onEvent != nil {
			onEvent(e)
		}
	}})
	return c.groups.m, nil
}

// ErrGroupKeyMismatch refuses adding a user to a group with an identity
// key other than the one this device holds for them (or while their
// safety number has changed and was not verified again).
var ErrGroupKeyMismatch = errors.New("client: the identity key in the group key package is not the one held for this contact")

// checkGroupUser vets a user about to be added to a group like a 1:1
// contact: the relay's key log must prove the key it serves for them
// (RefreshIdentity, which also remembers a first key), and the key in
// their KeyPackage must be the one this device holds for them, with no
// unverified change pending.
func (c *Client) checkGroupUser(ctx context.Context, user string, identityKey []byte) error {
	if err := c.RefreshIdentity(ctx, user); err != nil {
		return err
	}
	rec, err := loadIdentity(ctx, c.db, normalize(user))
	if err != nil {
		return err
	}
	switch {
	case rec == nil:
		return fmt.Errorf("%w: %s: no key held", ErrGroupKeyMismatch, user)
	case rec.Changed:
		return fmt.Errorf("%w: %s's safety number changed; verify it first", ErrGroupKeyMismatch, user)
	case !sameKey(rec.Key, identityKey):
		return fmt.Errorf("%w: %s", ErrGroupKeyMismatch, user)
	}
	return nil
}
