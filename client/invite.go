package client

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/keylog"
	"sotto/client/org"
	"sotto/orgcert"
	"sotto/wire"
)

// The organization's side of enrollment: the first admin device creates
// the organization with the relay host's one-time bootstrap code, and
// admins then mint an invitation for each person.

// BootstrapPrefix starts a bootstrap code's text form (relay.BootstrapPrefix).
const BootstrapPrefix = "sotto-bootstrap:"

// ErrBadBootstrap reports a malformed bootstrap code.
var ErrBadBootstrap = errors.New("client: malformed bootstrap code")

// ParseBootstrap reads the code `sottod admin bootstrap` prints.
func ParseBootstrap(text string) (*wire.BootstrapCode, error) {
	rest, ok := strings.CutPrefix(org.FindToken(text, BootstrapPrefix), BootstrapPrefix)
	if !ok || len(rest) > 4096 {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrBadBootstrap, BootstrapPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrBadBootstrap)
	}
	var c wire.BootstrapCode
	if err := proto.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%w: not a bootstrap code", ErrBadBootstrap)
	}
	if len(c.LogKey) != ed25519.PublicKeySize || len(c.Secret) != orgcert.SeatTokenSize ||
		(len(c.TlsPin) != 0 && len(c.TlsPin) != 32) || org.CheckRelayURL(c.RelayUrl) != nil {
		return nil, fmt.Errorf("%w: fields", ErrBadBootstrap)
	}
	return &c, nil
}

// BootstrapParams describe the first admin device of a new organization.
type BootstrapParams struct {
	Dir        string
	Passphrase []byte
	Code       *wire.BootstrapCode
	Username   string
	OrgName    string
	DeviceName string
	// WitnessKey is the org witness's public key, when the org runs one
	// already (it can be set later with SetWitnessKey).
	WitnessKey ed25519.PublicKey
	// RelayCA is the CA (PEM) that issued the relay's certificate, where
	// it is not publicly trusted; the device keeps it, with the code's
	// pin, and hands both on in its invitations.
	RelayCA []byte
}

// Bootstrap creates the organization: a new org key on this device, kept
// in its encrypted store, and this device enrolled as the organization's
// first member with a grant it signs for itself. The relay registers the
// org public key in the same transaction, and only while it has none.
func Bootstrap(ctx context.Context, p BootstrapParams, opts *Options) (*Client, error) {
	if p.Code == nil {
		return nil, ErrBadBootstrap
	}
	o := opts.withDefaults()
	user, err := validUsername(p.Username)
	if err != nil {
		return nil, err
	}
	orgPub, orgPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	defer clear(orgPriv)
	invPub, invPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	defer clear(invPriv)
	now := o.Now()
	h := orgcert.HashSeatToken(p.Code.Secret)
	grant, err := orgcert.SignGrant(orgPriv, &orgcert.Grant{Username: user, InvitationKey: invPub,
		SeatTokenHash: h[:], IssuedMs: now.UnixMilli(), ExpiresMs: now.Add(bootstrapSubscription).UnixMilli(), OrgName: p.OrgName})
	if err != nil {
		return nil, err
	}
	return enrollWith(ctx, enrollment{dir: p.Dir, passphrase: p.Passphrase, relay: p.Code.RelayUrl, relayCA: p.RelayCA, relayPin: p.Code.TlsPin, username: user,
		deviceName: p.DeviceName, seat: base64.RawURLEncoding.EncodeToString(p.Code.Secret), grant: grant,
		invitationKey: invPriv, logKey: p.Code.LogKey, bootstrapOrg: orgPriv,
		roots: roots{OrgKey: orgPub, OrgName: p.OrgName, WitnessKey: p.WitnessKey}}, &o)
}

// bootstrapSubscription is how long the grant the first admin signs for
// itself runs (the relay's bootstrap code sets the account's subscription).
const bootstrapSubscription = 10 * 365 * 24 * time.Hour

// InviteParams describe an invitation to mint.
type InviteParams struct {
	Username string
	Validity time.Duration // redemption and subscription
	// RelayURL overrides this device's relay URL (the address people
	// outside reach the relay at).
	RelayURL string
	// RelayCA and RelayPin override this device's pinned TLS settings for
	// the relay (nil: this device's).
	RelayCA, RelayPin []byte
}

// Invite mints an invitation for a new member with the org key (this
// device must hold it), registers its grant with the relay and returns the
// invitation, which the admin hands to the person out of band. It carries
// this device's pinned roots of trust.
func (c *Client) Invite(ctx context.Context, p InviteParams) (*org.Invitation, error) {
	if p.Validity <= 0 || p.Validity > 10*365*24*time.Hour {
		return nil, fmt.Errorf("client: invitation validity out of range")
	}
	user, err := validUsername(p.Username)
	if err != nil {
		return nil, err
	}
	priv, err := c.adminKey(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	r, err := loadRoots(ctx, c.db)
	if err != nil {
		return nil, err
	}
	lk, err := keylog.LogKey(ctx, c.db)
	if err != nil {
		return nil, err
	}
	pol, err := c.policyVersion(ctx)
	if err != nil {
		return nil, err
	}
	floor, err := c.noticeHigh(ctx)
	if err != nil {
		return nil, err
	}
	relayURL := c.acct.Relay
	if p.RelayURL != "" {
		relayURL = p.RelayURL
	}
	now := c.opts.Now()
	ca, pin := c.acct.RelayCA, c.acct.RelayPin
	if p.RelayCA != nil {
		ca = p.RelayCA
	}
	if p.RelayPin != nil {
		pin = p.RelayPin
	}
	inv, grant, err := org.MintInvitation(priv, org.MintParams{Username: user, Expires: now.Add(p.Validity), RelayURL: relayURL,
		RelayCA: ca, RelayTLSPin: pin,
		OrgName: r.OrgName, LogKey: lk, WitnessKey: r.WitnessKey, PolicyVersion: pol, NoticeSeq: floor, Now: now})
	if err != nil {
		return nil, err
	}
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	if _, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgInvite{OrgInvite: &wire.OrgInviteRequest{
		Grants: []*wire.OrgDocument{grant}}}}); err != nil {
		return nil, fmt.Errorf("client: register the invitation: %w", err)
	}
	c.noteInvited(ctx, user) // orgconsole.go
	return inv, nil
}

// validUsername normalizes a username and checks its shape as the relay
// does (3 to 32 characters of a-z, 0-9, '.', '_', '-').
func validUsername(u string) (string, error) {
	n := strings.ToLower(normalize(u))
	if len(n) < 3 || len(n) > 32 {
		return "", fmt.Errorf("client: a username has 3 to 32 characters")
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "", fmt.Errorf("client: a username has only a-z, 0-9, '.', '_' and '-'")
		}
	}
	return n, nil
}
