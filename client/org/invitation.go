package org

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/orgcert"
	"sotto/wire"
)

// InvitationPrefix starts an invitation's text form.
const InvitationPrefix = "sotto-invite:"

// maxInvitationText bounds an invitation's text form.
const maxInvitationText = 8 << 10

// ErrBadInvitation reports an invitation that is malformed or does not
// hold together (its grant not signed by its org key, or for another
// invitation key or seat). Errors wrapping it never quote the invitation:
// it holds secrets.
var ErrBadInvitation = errors.New("org: malformed or inconsistent invitation")

// MintParams describe an invitation to mint.
type MintParams struct {
	Username      string // normalized
	Expires       time.Time
	RelayURL      string
	RelayTLSPin   []byte
	RelayCA       []byte
	OrgName       string
	LogKey        ed25519.PublicKey
	WitnessKey    ed25519.PublicKey // nil: the org runs no witness
	PolicyVersion uint64
	NoticeSeq     uint64
	Now           time.Time
}

// MintInvitation makes an invitation for p.Username with a fresh one-time
// invitation key and seat token, and the org key's grant for them. The
// grant goes to the relay (OrgInvite); the invitation, to the invited
// person out of band.
func MintInvitation(orgKey ed25519.PrivateKey, p MintParams) (*Invitation, *wire.OrgDocument, error) {
	if len(orgKey) != ed25519.PrivateKeySize {
		return nil, nil, ErrBadKey
	}
	if len(p.LogKey) != ed25519.PublicKeySize {
		return nil, nil, fmt.Errorf("org: an invitation needs the key log's key")
	}
	if err := CheckRelayURL(p.RelayURL); err != nil {
		return nil, nil, err
	}
	invPub, invPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	defer clear(invPriv)
	seat := make([]byte, orgcert.SeatTokenSize)
	if _, err := rand.Read(seat); err != nil {
		return nil, nil, err
	}
	h := orgcert.HashSeatToken(seat)
	grant, err := orgcert.SignGrant(orgKey, &orgcert.Grant{Username: p.Username, InvitationKey: invPub,
		SeatTokenHash: h[:], IssuedMs: p.Now.UnixMilli(), ExpiresMs: p.Expires.UnixMilli(), OrgName: p.OrgName})
	if err != nil {
		return nil, nil, err
	}
	gb, err := proto.Marshal(grant)
	if err != nil {
		return nil, nil, err
	}
	inv := &Invitation{Version: 1, RelayUrl: p.RelayURL, RelayTlsPin: p.RelayTLSPin, RelayCa: p.RelayCA,
		OrgKey: orgKey.Public().(ed25519.PublicKey), OrgName: p.OrgName, LogKey: p.LogKey, WitnessKey: p.WitnessKey,
		InvitationSeed: invPriv.Seed(), SeatToken: seat, Grant: gb, PolicyVersion: p.PolicyVersion, NoticeSeq: p.NoticeSeq}
	return inv, grant, nil
}

// FindToken returns the word of text that starts with prefix (text may
// be a command's whole output), else text without white space.
func FindToken(text, prefix string) string {
	for _, f := range strings.Fields(text) {
		if strings.HasPrefix(f, prefix) {
			return f
		}
	}
	return strings.Join(strings.Fields(text), "")
}

// CheckRelayURL checks that s is a ws:// or wss:// URL with a host.
func CheckRelayURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || len(s) > 512 {
		return fmt.Errorf("org: the relay URL must be ws:// or wss:// with a host")
	}
	return nil
}

// Text is the invitation's text form.
func (inv *Invitation) Text() (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(inv)
	if err != nil {
		return "", fmt.Errorf("org: encode invitation: %w", err)
	}
	return InvitationPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Opened is a parsed, self-consistent invitation.
type Opened struct {
	*Invitation
	Grant    *orgcert.Grant
	GrantDoc *wire.OrgDocument
}

// Username is the user the invitation enrolls.
func (o *Opened) Username() string { return o.Grant.Username }

// InvitationKey returns the one-time invitation private key; callers
// clear it after use.
func (o *Opened) InvitationKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(o.InvitationSeed) }

// SeatCode is the seat token as the enrollment request carries it.
func (o *Opened) SeatCode() string { return base64.RawURLEncoding.EncodeToString(o.SeatToken) }

// ParseInvitation reads an invitation's text form and checks that it holds
// together: its grant is signed by the org key it carries, for its
// invitation key and seat token, and it has not expired at now. It does
// not (cannot) tell whether the org key is the right one: that is what
// handing the invitation over out of band is for, and why enrollment shows
// the organization's name and key fingerprint.
func ParseInvitation(text string, now time.Time) (*Opened, error) {
	text = FindToken(text, InvitationPrefix)
	rest, ok := strings.CutPrefix(text, InvitationPrefix)
	if !ok || len(text) > maxInvitationText {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrBadInvitation, InvitationPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url", ErrBadInvitation)
	}
	var inv Invitation
	if err := proto.Unmarshal(b, &inv); err != nil {
		return nil, fmt.Errorf("%w: not an invitation", ErrBadInvitation)
	}
	return openInvitation(&inv, now)
}

func openInvitation(inv *Invitation, now time.Time) (*Opened, error) {
	bad := func(what string) (*Opened, error) { return nil, fmt.Errorf("%w: %s", ErrBadInvitation, what) }
	switch {
	case inv.Version != 1:
		return bad(fmt.Sprintf("version %d (this client reads version 1)", inv.Version))
	case CheckRelayURL(inv.RelayUrl) != nil:
		return bad("relay URL")
	case len(inv.RelayTlsPin) != 0 && len(inv.RelayTlsPin) != sha256.Size:
		return bad("TLS pin")
	case len(inv.RelayCa) > 16<<10:
		return bad("CA certificate")
	case len(inv.OrgKey) != ed25519.PublicKeySize:
		return bad("organization key")
	case len(inv.LogKey) != ed25519.PublicKeySize:
		return bad("key log key")
	case len(inv.WitnessKey) != 0 && len(inv.WitnessKey) != ed25519.PublicKeySize:
		return bad("witness key")
	case len(inv.InvitationSeed) != ed25519.SeedSize:
		return bad("invitation key")
	case len(inv.SeatToken) != orgcert.SeatTokenSize:
		return bad("seat token")
	}
	var doc wire.OrgDocument
	if err := proto.Unmarshal(inv.Grant, &doc); err != nil {
		return bad("grant")
	}
	g, err := orgcert.OpenGrant(inv.OrgKey, &doc)
	if err != nil {
		return bad("the grant is not signed by the invitation's organization key")
	}
	priv := ed25519.NewKeyFromSeed(inv.InvitationSeed)
	defer clear(priv)
	h := orgcert.HashSeatToken(inv.SeatToken)
	if !bytes.Equal(priv.Public().(ed25519.PublicKey), g.InvitationKey) || !bytes.Equal(h[:], g.SeatTokenHash) {
		return bad("the grant is for another invitation")
	}
	if g.OrgName != inv.OrgName {
		return bad("organization name")
	}
	if !now.Before(time.UnixMilli(g.ExpiresMs)) {
		return nil, fmt.Errorf("%w: it expired on %s", ErrBadInvitation, time.UnixMilli(g.ExpiresMs).UTC().Format(time.DateOnly))
	}
	return &Opened{Invitation: inv, Grant: g, GrantDoc: &doc}, nil
}
