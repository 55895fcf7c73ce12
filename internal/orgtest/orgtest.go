// Package orgtest gives tests and the load generator an organization of
// their own: an org key registered with a relay's directory, invitations
// registered for named users, and the identity certificates that redeem
// them, as the org admin's client would make them (client/org, orgcert).
// It is for tests and tools with the relay's directory in hand; the
// product mints invitations on the admin's device only.
package orgtest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"sotto/client/org"
	"sotto/orgcert"
	"sotto/relay"
	"sotto/wire"
)

// Org is an organization whose private key the test holds.
type Org struct {
	Name string
	Key  ed25519.PrivateKey
}

// New makes an organization with a fresh key.
func New(name string) *Org {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return &Org{Name: name, Key: priv}
}

// Public is the org public key.
func (o *Org) Public() ed25519.PublicKey { return o.Key.Public().(ed25519.PublicKey) }

// Register stores the org key in dir, as the bootstrap enrollment would.
func (o *Org) Register(ctx context.Context, dir relay.OrgKeyStore) error {
	return dir.SetOrgKey(ctx, o.Public())
}

// Seat is a registered invitation for one user, as the relay sees it, and
// the invitation key that certifies the enrolling identity.
type Seat struct {
	Username string
	// Code is the seat token as EnrollRequest.activation_code carries it.
	Code  string
	Grant *wire.OrgDocument
	inv   ed25519.PrivateKey
}

// Invite mints a grant for username valid until expires and registers it
// with dir.
func (o *Org) Invite(ctx context.Context, dir relay.Directory, username string, expires, now time.Time) (*Seat, error) {
	seats, err := o.InviteAll(ctx, dir, []string{username}, expires, now)
	if err != nil {
		return nil, err
	}
	return seats[0], nil
}

// MaxBatch is the most grants InviteAll registers at once (the relay's
// limit per OrgInvite request).
const MaxBatch = 1000

// InviteAll mints a grant for each username, valid until expires, and
// registers them with dir MaxBatch at a time. On an error, the batches
// before are registered.
func (o *Org) InviteAll(ctx context.Context, dir relay.Directory, usernames []string, expires, now time.Time) ([]*Seat, error) {
	seats := make([]*Seat, 0, len(usernames))
	for len(usernames) > 0 {
		n := min(len(usernames), MaxBatch)
		grants := make([]*wire.OrgDocument, 0, n)
		for _, u := range usernames[:n] {
			token := make([]byte, orgcert.SeatTokenSize)
			if _, err := rand.Read(token); err != nil {
				return nil, err
			}
			s, err := o.seat(u, token, expires, now)
			if err != nil {
				return nil, err
			}
			seats, grants = append(seats, s), append(grants, s.Grant)
		}
		if _, err := relay.RegisterInvitations(ctx, dir, grants, now); err != nil {
			return nil, fmt.Errorf("orgtest: register invitations: %w", err)
		}
		usernames = usernames[n:]
	}
	return seats, nil
}

// BootstrapSeat is the seat of the relay's bootstrap code secret
// (relay.CreateBootstrap) for the organization's first member, username:
// a grant the org key signs for itself, which the relay does not keep
// beforehand. The enrollment carries o.Public() as bootstrap_org_key.
func (o *Org) BootstrapSeat(secret []byte, username string, expires, now time.Time) (*Seat, error) {
	return o.seat(username, secret, expires, now)
}

func (o *Org) seat(username string, token []byte, expires, now time.Time) (*Seat, error) {
	invPub, invPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	h := orgcert.HashSeatToken(token)
	g, err := orgcert.SignGrant(o.Key, &orgcert.Grant{Username: username, InvitationKey: invPub, SeatTokenHash: h[:],
		IssuedMs: now.UnixMilli(), ExpiresMs: expires.UnixMilli(), OrgName: o.Name})
	if err != nil {
		return nil, err
	}
	return &Seat{Username: username, Code: base64.RawURLEncoding.EncodeToString(token), Grant: g, inv: invPriv}, nil
}

// Certify returns the identity certificate binding identityKey to the seat.
func (s *Seat) Certify(identityKey []byte) []byte {
	c, err := orgcert.Issue(s.Grant, s.inv, identityKey, time.Now())
	if err != nil {
		panic(err)
	}
	return c
}

// Certificate mints a grant for username and the identity certificate
// binding identityKey to it, registered nowhere: what the holder of an
// invitation for username could present.
func (o *Org) Certificate(username string, identityKey []byte, now time.Time) ([]byte, error) {
	invPub, invPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	h := orgcert.HashSeatToken(invPub) // any seat: this grant is never redeemed
	g, err := orgcert.SignGrant(o.Key, &orgcert.Grant{Username: username, InvitationKey: invPub, SeatTokenHash: h[:],
		IssuedMs: now.UnixMilli(), ExpiresMs: now.Add(time.Hour).UnixMilli(), OrgName: o.Name})
	if err != nil {
		return nil, err
	}
	return orgcert.Issue(g, invPriv, identityKey, now)
}

// Invitation mints a client invitation for username (registered with dir)
// carrying the relay URL and log key; p.Username, p.Now and p.Expires must
// be set.
func (o *Org) Invitation(ctx context.Context, dir relay.Directory, p org.MintParams) (*org.Opened, error) {
	p.OrgName = o.Name
	inv, grant, err := org.MintInvitation(o.Key, p)
	if err != nil {
		return nil, err
	}
	if _, err := relay.RegisterInvitations(ctx, dir, []*wire.OrgDocument{grant}, p.Now); err != nil {
		return nil, fmt.Errorf("orgtest: register invitation: %w", err)
	}
	text, err := inv.Text()
	if err != nil {
		return nil, err
	}
	return org.ParseInvitation(text, p.Now)
}
