package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/orgcert"
	"sotto/wire"
)

// Invitations and the organization's bootstrap. The relay is not trusted
// with who belongs to the organization: the org admin's client mints each
// invitation, and the relay only learns the grant (signed by the org key)
// and the hash of its seat token. An enrolling device proves the
// invitation with the seat token and brings an identity certificate
// signed with the invitation's private key, which the relay never sees;
// every contact checks that chain again (client, orgcert). The relay's own
// checks here keep an honest relay tidy: no device outside the
// organization, no enrollment before the organization exists.

// Errors of enrollment into the organization.
var (
	// ErrNoOrg refuses invitations and enrollments on a relay that has no
	// organization yet.
	ErrNoOrg = fmt.Errorf("%w: this relay has no organization yet: the first admin enrolls with `sottod admin bootstrap`'s code, then invites people", ErrForbidden)
	// ErrNotCertified refuses an enrollment whose identity certificate
	// does not chain to the organization's invitation for that name.
	ErrNotCertified = fmt.Errorf("%w: the identity certificate does not match the organization's invitation", ErrForbidden)
)

const (
	maxInvitesPerRequest = 1000
	bootstrapCodeID      = "bootstrap"
	// BootstrapPrefix starts a bootstrap code's text form.
	BootstrapPrefix = "sotto-bootstrap:"
)

func seatSubject(hash [32]byte) string { return hex.EncodeToString(hash[:]) }

// seatHash decodes an enrollment's seat token (base64url of 32 bytes).
func seatHash(code string) ([32]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(code))
	if err != nil || len(raw) != orgcert.SeatTokenSize {
		return [32]byte{}, ErrBadCode
	}
	return orgcert.HashSeatToken(raw), nil
}

// orgStores returns the directory's org key and document stores, which
// every backend that enrolls into an organization implements.
func orgStores(dir Directory) (OrgKeyStore, OrgDocumentStore, error) {
	ks, ok1 := dir.(OrgKeyStore)
	ds, ok2 := dir.(OrgDocumentStore)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("relay: the directory keeps no organization")
	}
	return ks, ds, nil
}

// RegisterInvitations checks grants against the registered org key and
// makes one seat for each, redeemable until the grant expires. It returns
// the seats' ids. The admin's client calls it through OrgInvite; tests and
// tools with the directory in hand may call it directly.
func RegisterInvitations(ctx context.Context, dir Directory, grants []*wire.OrgDocument, now time.Time) ([]string, error) {
	ks, ds, err := orgStores(dir)
	if err != nil {
		return nil, err
	}
	key, err := ks.OrgKey(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrNoOrg
	}
	if err != nil {
		return nil, err
	}
	if len(grants) == 0 || len(grants) > maxInvitesPerRequest {
		return nil, badRequest("between 1 and %d grants per request", maxInvitesPerRequest)
	}
	type seat struct {
		code Code
		doc  []byte
	}
	seats := make([]seat, 0, len(grants))
	for _, d := range grants {
		g, err := orgcert.OpenGrant(key, d)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrForbidden, err)
		}
		if u, err := NormalizeUsername(g.Username); err != nil || u != g.Username {
			return nil, badRequest("the grant's username is not a valid, normalized username")
		}
		expires := time.UnixMilli(g.ExpiresMs)
		if !now.Before(expires) {
			return nil, badRequest("the grant has expired")
		}
		b, err := proto.Marshal(&wire.OrgDocument{Kind: d.Kind, Body: d.Body, Signature: d.Signature})
		if err != nil {
			return nil, fmt.Errorf("relay: encode grant: %w", err)
		}
		var h [32]byte
		copy(h[:], g.SeatTokenHash)
		seats = append(seats, seat{code: Code{ID: newSeatID(), Hash: h, Seats: 1, Created: now, Expires: expires,
			Note: "invitation for " + g.Username}, doc: b})
	}
	ids := make([]string, 0, len(seats))
	for _, s := range seats {
		// The grant first: a seat is redeemable only once its grant is kept.
		if err := ds.PutOrgDocument(ctx, wire.OrgDocumentKind_ORG_INVITATION, seatSubject(s.code.Hash), s.doc); err != nil {
			return nil, err
		}
		if err := dir.CreateCode(ctx, s.code); err != nil {
			return nil, err
		}
		ids = append(ids, s.code.ID)
	}
	return ids, nil
}

// CreateBootstrap makes the one-time code with which the first admin
// device creates the organization; it refuses once an organization exists.
// The code is the secret's base64url form; only its hash is stored.
func CreateBootstrap(ctx context.Context, dir Directory, now time.Time, valid time.Duration) (secret []byte, err error) {
	ks, ds, err := orgStores(dir)
	if err != nil {
		return nil, err
	}
	switch _, err := ks.OrgKey(ctx); {
	case err == nil:
		return nil, withReason(ErrConflict, "the organization exists already; its admins invite people with `sotto admin invite`")
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	secret = make([]byte, orgcert.SeatTokenSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	h := orgcert.HashSeatToken(secret)
	// A new bootstrap code replaces an unused one.
	codes, err := dir.Codes(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range codes {
		if strings.HasPrefix(c.ID, bootstrapCodeID+"-") && !c.Revoked {
			if err := dir.RevokeCode(ctx, c.ID); err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
	}
	if err := ds.PutOrgDocument(ctx, wire.OrgDocumentKind_RELAY_BOOTSTRAP, seatSubject(h), []byte{1}); err != nil {
		return nil, err
	}
	if err := dir.CreateCode(ctx, Code{ID: bootstrapCodeID + "-" + newSeatID(), Hash: h, Seats: 1, Created: now,
		Expires: now.Add(valid), Note: "bootstrap of the organization"}); err != nil {
		return nil, err
	}
	return secret, nil
}

// EncodeBootstrap is the text form of a bootstrap code.
func EncodeBootstrap(c *wire.BootstrapCode) (string, error) {
	b, err := proto.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("relay: encode bootstrap code: %w", err)
	}
	return BootstrapPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// checkEnrollment checks an enrollment against the organization: an
// invitation's seat whose grant names username and whose invitation key
// signed the identity certificate, or, before any organization exists,
// the bootstrap seat and a certificate that chains to the org key the
// request registers. It returns the org key to register (bootstrap only).
func (s *Server) checkEnrollment(ctx context.Context, r *wire.EnrollRequest, username string, seat [32]byte) (orgKey []byte, err error) {
	ks, ds, err := orgStores(s.dir)
	if err != nil {
		return nil, err
	}
	registered, err := ks.OrgKey(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
		if len(r.BootstrapOrgKey) == 0 {
			return nil, ErrNoOrg
		}
		if _, err := ds.OrgDocument(ctx, wire.OrgDocumentKind_RELAY_BOOTSTRAP, seatSubject(seat)); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil, ErrBadCode
			}
			return nil, err
		}
		v, err := orgcert.Verify(r.BootstrapOrgKey, r.IdentityCertificate, username, r.IdentityKey)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotCertified, err)
		}
		if bytes.Equal(v.Grant.SeatTokenHash, seat[:]) {
			return r.BootstrapOrgKey, nil
		}
		return nil, ErrNotCertified
	case err != nil:
		return nil, err
	}
	if len(r.BootstrapOrgKey) != 0 {
		return nil, fmt.Errorf("%w: the organization exists already", ErrBadCode)
	}
	doc, err := ds.OrgDocument(ctx, wire.OrgDocumentKind_ORG_INVITATION, seatSubject(seat))
	if errors.Is(err, ErrNotFound) {
		return nil, ErrBadCode
	}
	if err != nil {
		return nil, err
	}
	v, err := orgcert.Verify(registered, r.IdentityCertificate, username, r.IdentityKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCertified, err)
	}
	kept, err := decodeOrgDocument(doc)
	if err != nil {
		return nil, err
	}
	// The certificate must be for the grant registered with this seat.
	if !bytes.Equal(v.Grant.SeatTokenHash, seat[:]) || !proto.Equal(kept, v.GrantDoc) {
		return nil, ErrNotCertified
	}
	return nil, nil
}

// handleInvite registers the grants of an OrgInvite request.
func (c *conn) handleInvite(r *wire.OrgInviteRequest) (*wire.OrgInviteResponse, error) {
	ids, err := RegisterInvitations(c.ctx, c.s.dir, r.GetGrants(), c.s.cfg.Now())
	if err != nil {
		return nil, err
	}
	c.s.log.Info("invitations registered", "count", len(ids), "by", c.dev.String())
	return &wire.OrgInviteResponse{Ids: ids}, nil
}

// identityCertificate returns the identity certificate kept for username
// (nil when none).
func (s *Server) identityCertificate(ctx context.Context, username string) ([]byte, error) {
	ds, ok := s.dir.(OrgDocumentStore)
	if !ok {
		return nil, nil
	}
	b, err := ds.OrgDocument(ctx, wire.OrgDocumentKind_RELAY_IDENTITY_CERTIFICATE, username)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return b, err
}
