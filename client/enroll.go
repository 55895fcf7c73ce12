package client

import (
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/session"
	"sotto/wire"
)

// EnrollParams describe a new account's first device.
type EnrollParams struct {
	Dir        string // local store directory
	Passphrase []byte
	Relay      string // relay URL
	Code       string // activation code from the organization
	Username   string
	DeviceName string
}

// Enroll creates the local store, generates the account identity, the
// device key and prekeys, and registers them with the relay. On failure the
// new store is wiped so enrollment can be retried.
func Enroll(ctx context.Context, p EnrollParams, opts *Options) (cl *Client, err error) {
	o := opts.withDefaults()
	db, err := store.Create(ctx, p.Dir, p.Passphrase, &store.Options{KDF: o.KDF})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			db.Close()
			_ = store.Wipe(p.Dir)
		}
	}()
	identity, err := session.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("client: identity: %w", err)
	}
	acct := &account{Relay: p.Relay, Username: normalize(p.Username), DeviceName: p.DeviceName, Identity: identity.Serialize()}
	if err := newDeviceKeys(acct); err != nil {
		return nil, err
	}
	prekeys, err := generatePreKeys(ctx, db, acct, identity, initialPreKeys, initialKyberPreKeys, true, o.Now())
	if err != nil {
		return nil, err
	}
	conn, err := transport.Dial(ctx, p.Relay, transport.Options{})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := conn.Enroll(ctx, &wire.EnrollRequest{
		ActivationCode: p.Code, Username: acct.Username, IdentityKey: identity.PublicKey().Serialize(),
		RegistrationId: acct.RegistrationID, DeviceName: p.DeviceName, Prekeys: prekeys,
	}, acct.deviceKey())
	if err != nil {
		return nil, fmt.Errorf("client: enroll: %w", err)
	}
	acct.AccountID, acct.DeviceID = resp.AccountId, resp.DeviceId
	if resp.Username != "" {
		acct.Username = resp.Username
	}
	if err := saveAccount(ctx, db, acct); err != nil {
		return nil, err
	}
	if err := pinOrg(ctx, db, p.Code); err != nil {
		return nil, err
	}
	return newClient(ctx, db, o)
}

// Device linking. The new device opens a provisioning channel and shows a
// code holding the channel's address and an ephemeral X25519 public key; an
// existing device approves it by sending the account identity, username and
// a one-time link token sealed to that key with HPKE (RFC 9180,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305). The relay
// carries the sealed message without being able to read it.

const linkCodePrefix = "sotto-link:"

// ErrBadLinkCode reports a malformed link code.
var ErrBadLinkCode = errors.New("client: malformed link code")

func linkSuite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ChaCha20Poly1305() }

func linkInfo(address string) []byte { return []byte("sotto/link v1\x00" + address) }

// provisioning is the sealed payload of a link approval.
type provisioning struct {
	Username  string `json:"username"`
	AccountID []byte `json:"account_id"`
	Identity  []byte `json:"identity"` // serialized identity key pair
	LinkToken string `json:"link_token"`
	// OrgFingerprint binds the new device to the approving device's
	// organization (orgctl.go); sealed end to end like the rest.
	OrgFingerprint string `json:"org_fingerprint,omitempty"`
}

// Linking is a new device waiting to be approved.
type Linking struct {
	relay   string
	conn    *transport.Conn
	priv    *ecdh.PrivateKey
	address string
}

// BeginLink opens a provisioning channel at the relay for a new device.
func BeginLink(ctx context.Context, relay string) (*Linking, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("client: link key: %w", err)
	}
	conn, err := transport.Dial(ctx, relay, transport.Options{})
	if err != nil {
		return nil, err
	}
	addr, err := conn.Provision(ctx)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("client: provisioning channel: %w", err)
	}
	return &Linking{relay: relay, conn: conn, priv: priv, address: addr}, nil
}

// Code is what the user carries to an existing device (text or QR code).
func (l *Linking) Code() string { return encodeLinkCode(l.address, l.priv.PublicKey()) }

// Close abandons the link.
func (l *Linking) Close() error { return l.conn.Close() }

// Finish waits for an existing device's approval, then creates the local
// store and registers this device (its own device key and prekeys) on the
// account. It closes the provisioning channel.
func (l *Linking) Finish(ctx context.Context, dir string, passphrase []byte, deviceName string, opts *Options) (cl *Client, err error) {
	defer l.conn.Close()
	o := opts.withDefaults()
	var sealed []byte
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case b, ok := <-l.conn.ProvisioningMessages():
		if !ok {
			return nil, fmt.Errorf("client: provisioning channel closed: %w", l.conn.Err())
		}
		sealed = b
	}
	kdf, aead := linkSuite()
	hk, err := hpke.NewDHKEMPrivateKey(l.priv)
	if err != nil {
		return nil, fmt.Errorf("client: link key: %w", err)
	}
	pt, err := hpke.Open(hk, kdf, aead, linkInfo(l.address), sealed)
	if err != nil {
		return nil, fmt.Errorf("client: provisioning message does not decrypt: %w", err)
	}
	defer clear(pt)
	var pm provisioning
	if err := json.Unmarshal(pt, &pm); err != nil {
		return nil, fmt.Errorf("client: provisioning message: %w", err)
	}
	identity, err := session.ParseIdentityKeyPair(pm.Identity)
	if err != nil {
		return nil, fmt.Errorf("client: provisioning message: %w", err)
	}
	db, err := store.Create(ctx, dir, passphrase, &store.Options{KDF: o.KDF})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			db.Close()
			_ = store.Wipe(dir)
		}
	}()
	acct := &account{Relay: l.relay, Username: pm.Username, AccountID: pm.AccountID, DeviceName: deviceName, Identity: pm.Identity}
	if err := newDeviceKeys(acct); err != nil {
		return nil, err
	}
	prekeys, err := generatePreKeys(ctx, db, acct, identity, initialPreKeys, initialKyberPreKeys, true, o.Now())
	if err != nil {
		return nil, err
	}
	resp, err := l.conn.LinkDevice(ctx, &wire.LinkDeviceRequest{
		LinkToken: pm.LinkToken, IdentityKey: identity.PublicKey().Serialize(),
		RegistrationId: acct.RegistrationID, DeviceName: deviceName, Prekeys: prekeys,
	}, acct.deviceKey())
	if err != nil {
		return nil, fmt.Errorf("client: link device: %w", err)
	}
	acct.DeviceID = resp.DeviceId
	if len(resp.AccountId) > 0 {
		acct.AccountID = resp.AccountId
	}
	if err := saveAccount(ctx, db, acct); err != nil {
		return nil, err
	}
	if err := pinOrgFingerprint(ctx, db, pm.OrgFingerprint); err != nil {
		return nil, err
	}
	return newClient(ctx, db, o)
}

// encodeLinkCode is the inverse of parseLinkCode.
func encodeLinkCode(address string, pub *ecdh.PublicKey) string {
	enc := base64.RawURLEncoding
	return linkCodePrefix + enc.EncodeToString([]byte(address)) + "." + enc.EncodeToString(pub.Bytes())
}

// parseLinkCode reads a link code: the provisioning address and the new
// device's X25519 public key.
func parseLinkCode(code string) (string, *ecdh.PublicKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(code), linkCodePrefix)
	if !ok {
		return "", nil, ErrBadLinkCode
	}
	a, k, ok := strings.Cut(rest, ".")
	if !ok {
		return "", nil, ErrBadLinkCode
	}
	address, err1 := base64.RawURLEncoding.DecodeString(a)
	pubBytes, err2 := base64.RawURLEncoding.DecodeString(k)
	if err1 != nil || err2 != nil || len(address) == 0 || len(address) > 256 {
		return "", nil, ErrBadLinkCode
	}
	pub, err := ecdh.X25519().NewPublicKey(pubBytes)
	if err != nil {
		return "", nil, ErrBadLinkCode
	}
	return string(address), pub, nil
}

// ApproveLink lets the device that showed code join this account
// (connection needed). Approving hands over the account identity key: only
// approve a code read from a device in your own hands.
func (c *Client) ApproveLink(ctx context.Context, code string) error {
	address, pub, err := parseLinkCode(code)
	if err != nil {
		return err
	}
	conn, err := c.connection()
	if err != nil {
		return err
	}
	tok, err := conn.LinkToken(ctx)
	if err != nil {
		return fmt.Errorf("client: link token: %w", err)
	}
	fp, err := c.OrgFingerprint(ctx)
	if err != nil {
		return err
	}
	pt, err := json.Marshal(&provisioning{Username: c.acct.Username, AccountID: c.acct.AccountID,
		Identity: c.acct.Identity, LinkToken: tok.Token, OrgFingerprint: fp})
	if err != nil {
		return fmt.Errorf("client: provisioning message: %w", err)
	}
	defer clear(pt)
	hpub, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return ErrBadLinkCode
	}
	kdf, aead := linkSuite()
	sealed, err := hpke.Seal(hpub, kdf, aead, linkInfo(address), pt)
	if err != nil {
		return fmt.Errorf("client: seal provisioning message: %w", err)
	}
	if err := conn.SendProvisioning(ctx, address, sealed); err != nil {
		return fmt.Errorf("client: send provisioning message: %w", err)
	}
	// The own device list changed: fetch it again on the next send.
	return c.db.Delete(ctx, tblDevices, []byte(c.acct.Username))
}
