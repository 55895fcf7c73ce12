package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/org"
	"sotto/client/orgstate"
	"sotto/client/transport"
	"sotto/wire"
)

// ---- the admin's side: the org private key ----

func (c *Client) adminKey(ctx context.Context) (ed25519.PrivateKey, error) {
	return orgstate.AdminKey(ctx, c.db)
}

// installOrgKey keeps priv in the store; it must be the key of the
// organization this device is bound to.
func (c *Client) installOrgKey(ctx context.Context, priv ed25519.PrivateKey) error {
	return orgstate.InstallAdminKey(ctx, c.db, priv)
}

// OrgPublicKey returns the org public key this device trusts (nil: none yet).
func (c *Client) OrgPublicKey(ctx context.Context) (ed25519.PublicKey, error) {
	return getOpt(ctx, c.db, tblOrg, orgstate.KeyOrgKey)
}

// ExportOrgKey seals the org private key under passphrase for another
// admin device.
func (c *Client) ExportOrgKey(ctx context.Context, passphrase []byte) (string, error) {
	priv, err := c.adminKey(ctx)
	if err != nil {
		return "", err
	}
	defer clear(priv)
	return org.SealKey(priv, passphrase)
}

// ImportOrgKey installs an exported org key; it must be the key of the
// organization this device is bound to.
func (c *Client) ImportOrgKey(ctx context.Context, sealed string, passphrase []byte) error {
	priv, err := org.OpenKey(sealed, passphrase)
	if err != nil {
		return err
	}
	defer clear(priv)
	return c.installOrgKey(ctx, priv)
}

func (c *Client) publish(ctx context.Context, kind wire.OrgDocumentKind, body proto.Message, user string, device uint32) (int, error) {
	priv, err := c.adminKey(ctx)
	if err != nil {
		return 0, err
	}
	defer clear(priv)
	doc, err := org.Sign(priv, kind, body)
	if err != nil {
		return 0, err
	}
	conn, err := c.connection()
	if err != nil {
		return 0, err
	}
	resp, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgPublish{OrgPublish: &wire.OrgPublishRequest{
		Document: doc, Username: user, DeviceId: device}}})
	if err != nil {
		return 0, fmt.Errorf("client: publish: %w", err)
	}
	n := int(resp.GetOrgPublish().GetDevices())
	c.notePublished(ctx, kind, doc.Body, n, user, device) // delivery.go
	return n, nil
}

// PublishNotice signs a notice and has the relay deliver it to every
// device of the organization. It returns how many devices it was queued for.
func (c *Client) PublishNotice(ctx context.Context, text string) (int, error) {
	if strings.TrimSpace(text) == "" {
		return 0, fmt.Errorf("client: empty notice")
	}
	now := c.opts.Now()
	// The sequence is the issue time in microseconds: increasing across
	// admin devices without coordination.
	seq := uint64(now.UnixMicro())
	n, err := c.publish(ctx, wire.OrgDocumentKind_ORG_NOTICE, &org.Notice{Seq: seq, IssuedMs: now.UnixMilli(), Text: text}, "", 0)
	if err != nil {
		return 0, err
	}
	return n, orgstate.PutU64(ctx, c.db, orgstate.KeyNoticePublished, seq)
}

// PublishPolicy signs p and has the relay distribute it. A zero version
// becomes the version in force plus one.
func (c *Client) PublishPolicy(ctx context.Context, p *org.Policy) (int, error) {
	p = proto.Clone(p).(*org.Policy)
	if p.Version == 0 {
		// After both the version in force and the last one published
		// from here (which may not have come back yet).
		cur, err := c.OrgPolicy(ctx)
		if err != nil {
			return 0, err
		}
		last, err := orgstate.U64(ctx, c.db, orgstate.KeyPolicyPublished)
		if err != nil {
			return 0, err
		}
		p.Version = max(cur.GetVersion(), last) + 1
	}
	p.IssuedMs = c.opts.Now().UnixMilli()
	n, err := c.publish(ctx, wire.OrgDocumentKind_ORG_POLICY, p, "", 0)
	if err != nil {
		return 0, err
	}
	return n, orgstate.PutU64(ctx, c.db, orgstate.KeyPolicyPublished, p.Version)
}

// OrgWipe signs a wipe order for one device of user, bound to its current
// enrollment (registration id and the account's identity key), valid for
// validity, and has the relay queue it for that device.
func (c *Client) OrgWipe(ctx context.Context, user string, device uint32, validity time.Duration) (int, error) {
	if validity <= 0 || validity > org.MaxWipeValidity {
		return 0, fmt.Errorf("client: wipe order validity out of range")
	}
	conn, err := c.connection()
	if err != nil {
		return 0, err
	}
	devs, err := conn.GetDevices(ctx, user)
	if err != nil {
		return 0, fmt.Errorf("client: devices of %s: %w", user, err)
	}
	var reg uint32
	for _, d := range devs.Devices {
		if d.DeviceId == device {
			reg = d.RegistrationId
		}
	}
	if reg == 0 {
		return 0, fmt.Errorf("client: %s has no device %d", user, device)
	}
	idKey, err := c.identityFor(ctx, conn, user)
	if err != nil {
		return 0, err
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	now := c.opts.Now()
	return c.publish(ctx, wire.OrgDocumentKind_ORG_WIPE, &org.WipeOrder{Username: devs.Username, DeviceId: device,
		RegistrationId: reg, IdentityKey: idKey, Nonce: nonce, IssuedMs: now.UnixMilli(), ExpiresMs: now.Add(validity).UnixMilli()},
		devs.Username, device)
}

// identityFor returns user's identity key: the one this device knows, else
// the relay's.
func (c *Client) identityFor(ctx context.Context, conn *transport.Conn, user string) ([]byte, error) {
	if user == c.acct.Username {
		return c.IdentityKey(), nil
	}
	if r, err := loadIdentity(ctx, c.db, user); err != nil || (r != nil && !r.Changed) {
		if r != nil {
			return r.Key, err
		}
		return nil, err
	}
	id, err := conn.GetIdentity(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("client: identity of %s: %w", user, err)
	}
	return id.IdentityKey, nil
}

// Certify signs a membership certificate for user's current identity key,
// valid for validity, and has the relay distribute it.
func (c *Client) Certify(ctx context.Context, user string, validity time.Duration) (int, error) {
	conn, err := c.connection()
	if err != nil {
		return 0, err
	}
	idKey, err := c.identityFor(ctx, conn, user)
	if err != nil {
		return 0, err
	}
	now := c.opts.Now()
	return c.publish(ctx, wire.OrgDocumentKind_ORG_CERTIFICATE, &org.Certificate{Username: normalize(user), IdentityKey: idKey,
		IssuedMs: now.UnixMilli(), ExpiresMs: now.Add(validity).UnixMilli()}, normalize(user), 0)
}
