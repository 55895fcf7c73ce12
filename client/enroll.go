package client

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"sotto/client/account"
	"sotto/client/keylog"
	"sotto/client/linktransfer"
	"sotto/client/org"
	"sotto/client/orgstate"
	"sotto/client/sealedsender"
	"sotto/client/sessions"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/orgcert"
	"sotto/signal/session"
	"sotto/wire"
)

// EnrollParams describe a new account's first device.
type EnrollParams struct {
	Dir        string // local store directory
	Passphrase []byte
	// Invitation is the org admin's invitation (org.ParseInvitation): it
	// names the user and carries the relay's address and every root of
	// trust this device pins.
	Invitation *org.Opened
	DeviceName string
}

// Enroll creates the local store, generates the account identity, the
// device key and prekeys, certifies the identity key with the invitation's
// one-time key, and registers them with the relay named in the invitation.
// The device pins the invitation's org key, key log key and witness key;
// a relay that answers with another log key stops the enrollment
// (ErrLogKeyMismatch). On failure the new store is wiped so enrollment
// can be retried.
func Enroll(ctx context.Context, p EnrollParams, opts *Options) (*Client, error) {
	inv := p.Invitation
	if inv == nil {
		return nil, fmt.Errorf("client: enrolling needs an invitation from the organization")
	}
	priv := inv.InvitationKey()
	defer clear(priv)
	return enrollWith(ctx, enrollment{dir: p.Dir, passphrase: p.Passphrase, relay: inv.RelayUrl, relayCA: inv.RelayCa, relayPin: inv.RelayTlsPin, username: inv.Username(),
		deviceName: p.DeviceName, seat: inv.SeatCode(), grant: inv.GrantDoc, invitationKey: priv, logKey: inv.LogKey,
		roots: roots{OrgKey: inv.OrgKey, OrgName: inv.OrgName, WitnessKey: inv.WitnessKey, PolicyMin: inv.PolicyVersion,
			NoticeFloor: inv.NoticeSeq}}, opts)
}

// enrollment is what Enroll and Bootstrap have in common.
type enrollment struct {
	dir           string
	passphrase    []byte
	relay         string
	relayCA       []byte // the relay's TLS CA (PEM) and pin, from the invitation
	relayPin      []byte
	username      string
	deviceName    string
	seat          string
	grant         *wire.OrgDocument
	invitationKey ed25519.PrivateKey
	logKey        []byte
	roots         roots
	bootstrapOrg  ed25519.PrivateKey // the new org key (bootstrap only)
}

func enrollWith(ctx context.Context, e enrollment, opts *Options) (cl *Client, err error) {
	o := opts.withDefaults()
	db, err := store.Create(ctx, e.dir, e.passphrase, &store.Options{KDF: o.KDF, MinPassphraseBits: o.MinPassphraseBits})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			db.Close()
			_ = store.Wipe(e.dir)
		}
	}()
	identity, err := session.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("client: identity: %w", err)
	}
	cert, err := orgcert.Issue(e.grant, e.invitationKey, identity.PublicKey().Serialize(), o.Now())
	if err != nil {
		return nil, fmt.Errorf("client: identity certificate: %w", err)
	}
	acct := &account.Account{Relay: e.relay, Username: normalize(e.username), DeviceName: e.deviceName, Identity: identity.Serialize(),
		RelayCA: e.relayCA, RelayPin: e.relayPin}
	if err := account.NewDeviceKeys(acct); err != nil {
		return nil, err
	}
	prekeys, err := generatePreKeys(ctx, db, acct, identity, account.InitialPreKeys, account.InitialKyberPreKeys, true, o.Now())
	if err != nil {
		return nil, err
	}
	topts, err := account.RelayTransport(e.relayCA, e.relayPin, o.Transport)
	if err != nil {
		return nil, err
	}
	conn, err := transport.Dial(ctx, e.relay, topts)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	req := &wire.EnrollRequest{
		ActivationCode: e.seat, Username: acct.Username, IdentityKey: identity.PublicKey().Serialize(),
		RegistrationId: acct.RegistrationID, DeviceName: e.deviceName, Prekeys: prekeys, IdentityCertificate: cert,
	}
	if e.bootstrapOrg != nil {
		req.BootstrapOrgKey = e.bootstrapOrg.Public().(ed25519.PublicKey)
	}
	resp, err := conn.Enroll(ctx, req, acct.PrivateDeviceKey())
	if err != nil {
		return nil, fmt.Errorf("client: enroll: %w", err)
	}
	// The relay has registered the device by now; a wrong log key still
	// stops here, before anything is trusted (the operator removes the
	// account).
	if !bytes.Equal(resp.LogPublicKey, e.logKey) {
		return nil, ErrLogKeyMismatch
	}
	acct.AccountID, acct.DeviceID = resp.AccountId, resp.DeviceId
	if resp.Username != "" && resp.Username != acct.Username {
		return nil, fmt.Errorf("client: enroll: the relay enrolled another name (%q)", resp.Username)
	}
	if err := account.Save(ctx, db, acct); err != nil {
		return nil, err
	}
	if err := keylog.PinLogKey(ctx, db, e.logKey); err != nil {
		return nil, err
	}
	r := e.roots
	r.Certificate = cert
	if err := pinRoots(ctx, db, &r); err != nil {
		return nil, err
	}
	if e.bootstrapOrg != nil {
		if err := db.Put(ctx, tblOrg, []byte(orgstate.KeyAdmin), e.bootstrapOrg.Seed()); err != nil {
			return nil, err
		}
	}
	if err := sealedsender.PinTrustRoot(ctx, db, resp.SealedTrustRoot); err != nil {
		return nil, err
	}
	return newClient(ctx, db, o)
}

// Device linking. The new device opens a provisioning channel and shows a
// code holding the channel's address and an ephemeral X25519 public key; an
// existing device approves it by sending the account identity, username and
// a one-time link token sealed to that key with HPKE (the code and the
// seal are client/linktransfer's). The relay carries the sealed message
// without being able to read it.

// ErrProvisioningClosed reports a link channel the relay closed before an
// approval came (relays bound how long one stays open).
var ErrProvisioningClosed = errors.New("client: provisioning channel closed")

// ErrBadLinkCode reports a malformed link code (client/linktransfer).
var ErrBadLinkCode = linktransfer.ErrBadCode

// provisioning is the sealed payload of a link approval.
type provisioning struct {
	Username  string `json:"username"`
	AccountID []byte `json:"account_id"`
	Identity  []byte `json:"identity"` // serialized identity key pair
	LinkToken string `json:"link_token"`
	// Roots bind the new device to the approving device's organization
	// (orgroots.go): its org key, name, witness key, floors and the
	// account's identity certificate; sealed end to end like the rest.
	Roots *roots `json:"roots"`
	// RelayCA and RelayPin are the approving device's pinned TLS settings
	// for the relay (account.go).
	RelayCA  []byte `json:"relay_ca,omitempty"`
	RelayPin []byte `json:"relay_pin,omitempty"`
	// History locates the approving device's history export (history.go).
	History *historyPointer `json:"history,omitempty"`
	// LogKey is the key transparency log key the approving device
	// pinned: the new device pins it rather than trust the relay's link
	// response alone.
	LogKey []byte `json:"log_key,omitempty"`
	// Sealed is the account's profile key state (sealedsender.LinkState): the new
	// device keeps the same key, epoch and revocations.
	Sealed *sealedsender.LinkState `json:"sealed,omitempty"`
}

// ErrBadProvisioning reports a provisioning message that does not decrypt
// or does not hold a well-formed approval.
var ErrBadProvisioning = errors.New("client: bad provisioning message")

// ErrLinkLogKey reports a link the relay answered with another key
// transparency log key than the one the approving device pinned: the new
// device would see a different log. Its store is wiped; the device the
// relay registered should be removed from the approving device.
var ErrLinkLogKey = errors.New("client: the relay's key log key differs from the approving device's; link refused")

// Bounds of a provisioning message's fields; the approving device's
// values are far inside them.
const (
	maxProvisioningUsername = 64
	maxProvisioningToken    = 256
	provisioningAccountID   = 16
)

// openProvisioning decrypts a link approval sealed to priv for the
// provisioning address and parses it.
func openProvisioning(priv *ecdh.PrivateKey, address string, sealed []byte) (*provisioning, *session.IdentityKeyPair, error) {
	pt, err := linktransfer.Open(priv, address, sealed)
	if errors.Is(err, linktransfer.ErrNotOpened) {
		return nil, nil, fmt.Errorf("%w: it does not decrypt", ErrBadProvisioning)
	}
	if err != nil {
		return nil, nil, err
	}
	defer clear(pt)
	return parseProvisioning(pt)
}

// parseProvisioning parses and checks the plaintext of a link approval:
// anyone who read the link code can seal one, so nothing in it is trusted
// before it is checked. Errors wrap ErrBadProvisioning and never quote
// the message (it holds the identity private key).
func parseProvisioning(pt []byte) (*provisioning, *session.IdentityKeyPair, error) {
	var pm provisioning
	if err := json.Unmarshal(pt, &pm); err != nil {
		return nil, nil, fmt.Errorf("%w: not a JSON object of the right shape", ErrBadProvisioning)
	}
	switch {
	case pm.Username == "" || len(pm.Username) > maxProvisioningUsername || !utf8.ValidString(pm.Username) || normalize(pm.Username) != pm.Username:
		return nil, nil, fmt.Errorf("%w: bad username", ErrBadProvisioning)
	case len(pm.AccountID) != provisioningAccountID:
		return nil, nil, fmt.Errorf("%w: bad account id", ErrBadProvisioning)
	case pm.LinkToken == "" || len(pm.LinkToken) > maxProvisioningToken:
		return nil, nil, fmt.Errorf("%w: bad link token", ErrBadProvisioning)
	case pm.LogKey != nil && len(pm.LogKey) != ed25519.PublicKeySize:
		return nil, nil, fmt.Errorf("%w: bad key log key", ErrBadProvisioning)
	}
	if len(pm.RelayCA) > 16<<10 || (len(pm.RelayPin) != 0 && len(pm.RelayPin) != transport.PinSize) {
		clear(pm.Identity)
		return nil, nil, fmt.Errorf("%w: bad relay TLS settings", ErrBadProvisioning)
	}
	if pm.Sealed.Check() != nil {
		clear(pm.Identity)
		return nil, nil, fmt.Errorf("%w: bad profile key state", ErrBadProvisioning)
	}
	if pm.Roots == nil || pm.Roots.Check() != nil {
		clear(pm.Identity)
		return nil, nil, fmt.Errorf("%w: bad organization roots", ErrBadProvisioning)
	}
	if err := pm.History.check(); err != nil {
		pm.History.wipe()
		clear(pm.Identity)
		return nil, nil, fmt.Errorf("%w: bad history pointer", ErrBadProvisioning)
	}
	identity, err := session.ParseIdentityKeyPair(pm.Identity)
	clear(pm.Identity)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: bad identity key", ErrBadProvisioning)
	}
	// Keep the canonical encoding, not whatever extra fields came along.
	pm.Identity = identity.Serialize()
	return &pm, identity, nil
}

// Linking is a new device waiting to be approved.
type Linking struct {
	relay   string
	conn    *transport.Conn
	priv    *ecdh.PrivateKey
	address string
}

// BeginLink opens a provisioning channel at the relay for a new device,
// with the default transport options (BeginLinkWith).
func BeginLink(ctx context.Context, relay string) (*Linking, error) {
	return BeginLinkWith(ctx, relay, transport.Options{})
}

// BeginLinkWith is BeginLink reaching the relay under o (its TLS roots,
// pin and plaintext rule; give Finish the same in Options.Transport).
func BeginLinkWith(ctx context.Context, relay string, o transport.Options) (*Linking, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("client: link key: %w", err)
	}
	conn, err := transport.Dial(ctx, relay, o)
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
func (l *Linking) Code() string { return linktransfer.EncodeCode(l.address, l.priv.PublicKey()) }

// Close abandons the link.
func (l *Linking) Close() error { return l.conn.Close() }

// Finish waits for an existing device's approval, then creates the local
// store and registers this device (its own device key and prekeys) on the
// account. It closes the provisioning channel.
func (l *Linking) Finish(ctx context.Context, dir string, passphrase []byte, deviceName string, opts *Options) (cl *Client, err error) {
	defer l.conn.Close()
	o := opts.withDefaults()
	// Refuse a weak passphrase before the approval is used up.
	if err := store.CheckPassphrase(passphrase, o.minPassphraseBits()); err != nil {
		return nil, err
	}
	var sealed []byte
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case b, ok := <-l.conn.ProvisioningMessages():
		if !ok {
			return nil, fmt.Errorf("%w: %w", ErrProvisioningClosed, l.conn.Err())
		}
		sealed = b
	}
	pm, identity, err := openProvisioning(l.priv, l.address, sealed)
	if err != nil {
		return nil, err
	}
	defer pm.History.wipe()
	db, err := store.Create(ctx, dir, passphrase, &store.Options{KDF: o.KDF, MinPassphraseBits: o.MinPassphraseBits})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			db.Close()
			_ = store.Wipe(dir)
		}
	}()
	acct := &account.Account{Relay: l.relay, Username: pm.Username, AccountID: pm.AccountID, DeviceName: deviceName, Identity: pm.Identity,
		RelayCA: pm.RelayCA, RelayPin: pm.RelayPin}
	if err := savePendingHistory(ctx, db, pm.History); err != nil {
		return nil, err
	}
	if err := account.NewDeviceKeys(acct); err != nil {
		return nil, err
	}
	prekeys, err := generatePreKeys(ctx, db, acct, identity, account.InitialPreKeys, account.InitialKyberPreKeys, true, o.Now())
	if err != nil {
		return nil, err
	}
	resp, err := l.conn.LinkDevice(ctx, &wire.LinkDeviceRequest{
		LinkToken: pm.LinkToken, IdentityKey: identity.PublicKey().Serialize(),
		RegistrationId: acct.RegistrationID, DeviceName: deviceName, Prekeys: prekeys,
	}, acct.PrivateDeviceKey())
	if err != nil {
		return nil, fmt.Errorf("client: link device: %w", err)
	}
	acct.DeviceID = resp.DeviceId
	if len(resp.AccountId) > 0 {
		acct.AccountID = resp.AccountId
	}
	if err := account.Save(ctx, db, acct); err != nil {
		return nil, err
	}
	logKey := resp.LogPublicKey
	if pm.LogKey != nil {
		if len(logKey) != 0 && !bytes.Equal(logKey, pm.LogKey) {
			return nil, fmt.Errorf("%w (device %d)", ErrLinkLogKey, resp.DeviceId)
		}
		logKey = pm.LogKey
	}
	if err := keylog.PinLogKey(ctx, db, logKey); err != nil {
		return nil, err
	}
	if _, err := orgcert.Verify(pm.Roots.OrgKey, pm.Roots.Certificate, pm.Username, identity.PublicKey().Serialize()); err != nil {
		return nil, fmt.Errorf("%w: the account's identity certificate does not hold: %v", ErrBadProvisioning, err)
	}
	if err := pinRoots(ctx, db, pm.Roots); err != nil {
		return nil, err
	}
	if err := sealedsender.PinTrustRoot(ctx, db, resp.SealedTrustRoot); err != nil {
		return nil, err
	}
	if pm.Sealed != nil {
		if err := db.Update(ctx, func(tx *store.Tx) error { return sealedsender.SaveState(ctx, tx, pm.Sealed.State()) }); err != nil {
			return nil, err
		}
	}
	return newClient(ctx, db, o)
}

// parseLinkCode reads a link code (linktransfer's), with or without the
// device name part NamedCode adds (linkname.go).
func parseLinkCode(code string) (string, *ecdh.PublicKey, error) {
	return linktransfer.ParseCode(stripLinkName(code))
}

// ApproveLink lets the device that showed code join this account
// (connection needed), without history. Approving hands over the account
// identity key: only approve a code read from a device in your own hands.
func (c *Client) ApproveLink(ctx context.Context, code string) error {
	_, err := c.ApproveLinkWith(ctx, code, ApproveOptions{})
	return err
}

// ApproveLinkWith is ApproveLink, and with o.History it also sends this
// device's history, contacts and settings (history.go); it then returns
// what was sent.
func (c *Client) ApproveLinkWith(ctx context.Context, code string, o ApproveOptions) (_ *HistorySummary, err error) {
	address, pub, err := parseLinkCode(code)
	if err != nil {
		return nil, err
	}
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	tok, err := conn.LinkToken(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: link token: %w", err)
	}
	rts, err := loadRoots(ctx, c.db)
	if err != nil {
		return nil, err
	}
	if rts.PolicyMin, err = c.policyVersion(ctx); err != nil {
		return nil, err
	}
	if rts.NoticeFloor, err = c.noticeHigh(ctx); err != nil {
		return nil, err
	}
	lk, err := keylog.LogKey(ctx, c.db)
	if err != nil {
		return nil, err
	}
	var hist *historyPointer
	var sum *HistorySummary
	sent := false
	if o.History {
		if hist, sum, err = c.uploadHistory(ctx); err != nil {
			return nil, err
		}
		defer hist.wipe()
		defer func() {
			if err != nil && !sent {
				c.deleteHistoryBlob(ctx, hist.BlobID) // nobody can use it
			}
		}()
	}
	ks, err := sealedsender.LoadState(ctx, c.db)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(&provisioning{Username: c.acct.Username, AccountID: c.acct.AccountID,
		Identity: c.acct.Identity, LinkToken: tok.Token, Roots: rts, RelayCA: c.acct.RelayCA, RelayPin: c.acct.RelayPin, History: hist, LogKey: lk,
		Sealed: sealedsender.LinkStateOf(ks)})
	if err != nil {
		return nil, fmt.Errorf("client: provisioning message: %w", err)
	}
	defer clear(pt)
	sealed, err := linktransfer.Seal(pub, address, pt)
	if err != nil {
		return nil, fmt.Errorf("client: seal provisioning message: %w", err)
	}
	if err := conn.SendProvisioning(ctx, address, sealed); err != nil {
		return nil, fmt.Errorf("client: send provisioning message: %w", err)
	}
	sent = true
	// The own device list changed: fetch it again on the next send.
	return sum, sessions.Forget(ctx, c.db, c.acct.Username)
}
