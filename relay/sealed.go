package relay

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"sotto/wire"
)

// Sealed sender on the relay (DESIGN §4).
//
// A sealed send arrives on a connection that never authenticated; it names
// the recipient account and presents that account's unidentified access key,
// which the relay compares in constant time with the one the account
// uploaded. The relay stores and pushes the envelopes with no sender. It
// learns who received a message, not who wrote it, except by what it can
// see of the connection itself (the client's IP address and the timing of
// the sealed connection against the device's authenticated one).
//
// The relay also issues sender certificates to authenticated devices. In
// Sotto's threat model they carry no trust: a hostile relay can mint one for
// anybody. What stops a forged sender is the recipient, which checks that
// the certificate's identity key is the one it holds for that user (trust on
// first use, safety numbers) and then decrypts with that user's session.

// AccessKeyStore is implemented by directories that keep the accounts'
// unidentified access keys. AccessKey returns ErrNotFound when the account
// uploaded none.
type AccessKeyStore interface {
	SetAccessKey(ctx context.Context, acct AccountID, key []byte) error
	AccessKey(ctx context.Context, acct AccountID) ([]byte, error)
}

// CertificateIssuer makes sender certificates (libsignal's layout). The
// relay imports no Signal code: cmd/sottod supplies one built on
// signal/sealed with the trust root it keeps in its data directory.
type CertificateIssuer interface {
	// TrustRoot is the serialized public trust root key.
	TrustRoot() []byte
	// SenderCertificate certifies (sender, device, identityKey) until expires.
	SenderCertificate(sender string, device uint32, identityKey []byte, expires time.Time) ([]byte, error)
}

// Defaults of the sealed send path.
const (
	defaultCertificateTTL = 24 * time.Hour
	maxAccessKey          = 64
)

// defaultSealedRate bounds sealed sends per client IP address.
var defaultSealedRate = Rate{PerSecond: 50, Burst: 200}

// sealedService holds the sealed send path's state.
type sealedService struct {
	issuer CertificateIssuer // nil: no certificates
	keys   AccessKeyStore    // nil: no sealed sends
	ttl    time.Duration
	ipRate *keyedLimiter
}

func (s *Server) initSealed() {
	ss := &sealedService{issuer: s.cfg.SenderCertificates, ttl: s.cfg.SenderCertificateTTL}
	if ss.ttl <= 0 {
		ss.ttl = defaultCertificateTTL
	}
	ss.keys, _ = s.dir.(AccessKeyStore)
	r := s.cfg.SealedRate
	if r == (Rate{}) {
		r = defaultSealedRate
	}
	ss.ipRate = newKeyedLimiter(r)
	s.sealed = ss
}

// sealedTrustRoot is what EnrollResponse.sealed_trust_root carries.
func (s *Server) sealedTrustRoot() []byte {
	if s.sealed == nil || s.sealed.issuer == nil {
		return nil
	}
	return s.sealed.issuer.TrustRoot()
}

// handleSealed answers the authenticated sealed-sender requests.
func (c *conn) handleSealed(req *wire.Request, resp *wire.Response) (bool, error) {
	switch b := req.Body.(type) {
	case *wire.Request_SetAccessKey:
		if err := c.setAccessKey(b.SetAccessKey.GetAccessKey(), b.SetAccessKey.GetRefuseMemberAccess(), b.SetAccessKey.GetEpoch()); err != nil {
			return true, err
		}
		resp.Body = &wire.Response_SetAccessKey{SetAccessKey: &wire.SetAccessKeyResponse{}}
		return true, nil
	case *wire.Request_SenderCertificate:
		r, err := c.senderCertificate()
		if err != nil {
			return true, err
		}
		resp.Body = &wire.Response_SenderCertificate{SenderCertificate: r}
		return true, nil
	}
	return false, nil
}

func (c *conn) setAccessKey(key []byte, refuseMember bool, epoch uint64) error {
	if c.s.sealed.keys == nil {
		return fmt.Errorf("%w: this relay's store keeps no access keys", ErrUnavailable)
	}
	if len(key) != wire.AccessKeySize {
		return badRequest("access key must be %d bytes", wire.AccessKeySize)
	}
	stored, err := c.s.sealed.keys.AccessKey(c.ctx, c.dev.Account)
	switch {
	case err == nil:
		if err := checkAccessKeyEpoch(stored, epoch); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	return c.s.sealed.keys.SetAccessKey(c.ctx, c.dev.Account, storedAccessKey(key, refuseMember, epoch))
}

func (c *conn) senderCertificate() (*wire.SenderCertificateResponse, error) {
	is := c.s.sealed.issuer
	if is == nil {
		return nil, fmt.Errorf("%w: this relay issues no sender certificates", ErrUnavailable)
	}
	now := c.s.cfg.Now()
	if !now.Before(c.acct.Expires) {
		return nil, ErrExpired
	}
	exp := now.Add(c.s.sealed.ttl).Truncate(time.Millisecond)
	cert, err := is.SenderCertificate(c.username, c.dev.Device, c.acct.IdentityKey, exp)
	if err != nil {
		return nil, fmt.Errorf("relay: sender certificate: %w", err)
	}
	return &wire.SenderCertificateResponse{Certificate: cert, ExpiresMs: exp.UnixMilli(), TrustRoot: is.TrustRoot()}, nil
}

// errSealedAuth is the one answer for an unknown recipient, a recipient
// without an access key and a wrong access key, so that a sealed send does
// not tell them apart.
var errSealedAuth = fmt.Errorf("%w: access key refused", ErrUnauthenticated)

// sealedSend stores a send that names no sender. It is served only on a
// connection that never authenticated.
func (c *conn) sealedSend(r *wire.SealedSendRequest) (*wire.SendMessageResponse, error) {
	if c.authed {
		return nil, badRequest("sealed sends go over a connection that never authenticated")
	}
	ss := c.s.sealed
	if ss.keys == nil {
		return nil, fmt.Errorf("%w: this relay's store keeps no access keys", ErrUnavailable)
	}
	now := c.s.cfg.Now()
	if err := ss.ipRate.allow(c.ip, now); err != nil {
		return nil, err
	}
	if len(r.MessageId) == 0 || len(r.MessageId) > maxMessageID {
		return nil, badRequest("message id must be 1 to %d bytes", maxMessageID)
	}
	if len(r.Messages) == 0 || len(r.Messages) > maxRecipients {
		return nil, badRequest("1 to %d recipient devices", maxRecipients)
	}
	if len(r.AccessKey) > maxAccessKey {
		return nil, badRequest("access key too long")
	}
	// Read on every sealed send, before the recipient is looked up, so
	// that it adds nothing to what timing tells about the recipient.
	member, err := c.s.memberAccess(c.ctx)
	if err != nil {
		return nil, err
	}
	acct, devs, err := c.lookup(r.Recipient)
	if errors.Is(err, ErrNotFound) {
		subtle.ConstantTimeCompare(r.AccessKey, make([]byte, wire.AccessKeySize))
		return nil, errSealedAuth
	}
	if err != nil {
		return nil, err
	}
	stored, err := ss.keys.AccessKey(c.ctx, acct.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	// The recipient's own key, or the organization's member key: both
	// compared every time, so that timing does not tell which matched.
	var memberKey []byte
	if member != nil {
		memberKey = member.AccessKey
	}
	stored, refuse, _ := splitAccessKey(stored)
	own := accessKeyMatches(stored, r.AccessKey)
	org := accessKeyMatches(memberKey, r.AccessKey) & (1 ^ refuse)
	if own|org != 1 {
		return nil, errSealedAuth
	}
	for _, m := range r.Messages {
		if m.Type != wire.EnvelopeTypeSealed {
			return nil, badRequest("a sealed send carries only sealed messages (type %d)", wire.EnvelopeTypeSealed)
		}
	}
	if err := staleCheck(acct, devs, r.Messages); err != nil {
		return nil, err
	}
	send := &Send{MessageID: r.MessageId, Timestamp: now, Envelopes: make([]Envelope, len(r.Messages))}
	for i, m := range r.Messages {
		e := &send.Envelopes[i]
		copy(e.ID[8:], randomBytes(8))
		e.Recipient = DeviceAddr{Account: acct.ID, Device: m.DeviceId}
		e.Timestamp, e.Type, e.Content, e.MessageID = now, m.Type, m.Content, r.MessageId
	}
	res, err := c.s.mb.Append(c.ctx, send)
	if err != nil {
		return nil, err
	}
	c.s.metrics.sends.Add(1)
	if !res.Duplicate {
		c.s.metrics.stored.Add(uint64(len(send.Envelopes)))
		for i := range send.Envelopes {
			e := send.Envelopes[i : i+1]
			if err := c.s.bus.Notify(c.ctx, e[0].Recipient, e); err != nil {
				c.s.log.Warn("notifying recipient", "device", e[0].Recipient.String(), "err", err)
			}
		}
	}
	c.sealedSent()
	return &wire.SendMessageResponse{ServerTimestampMs: res.Timestamp.UnixMilli(), Duplicate: res.Duplicate}, nil
}

// staleCheck is the device-list check of every send: one ciphertext for
// each active device of the recipient account, with its registration id.
// A sealed send has no sender device to leave out.
func staleCheck(acct Account, devs []Device, msgs []*wire.OutgoingMessage) error {
	want := make(map[uint32]uint32, len(devs))
	for _, d := range devs {
		want[d.Addr.Device] = d.RegistrationID
	}
	stale := &StaleError{Username: acct.Username, Current: devs}
	seen := make(map[uint32]bool, len(msgs))
	for _, m := range msgs {
		if seen[m.DeviceId] {
			return badRequest("duplicate device id %d", m.DeviceId)
		}
		seen[m.DeviceId] = true
		reg, ok := want[m.DeviceId]
		switch {
		case !ok:
			stale.Extra = append(stale.Extra, m.DeviceId)
		case reg != m.RegistrationId:
			stale.Mismatched = append(stale.Mismatched, m.DeviceId)
		}
	}
	for id := range want {
		if !seen[id] {
			stale.Missing = append(stale.Missing, id)
		}
	}
	if len(stale.Missing)+len(stale.Extra)+len(stale.Mismatched) > 0 {
		slices.Sort(stale.Missing)
		slices.Sort(stale.Extra)
		slices.Sort(stale.Mismatched)
		return stale
	}
	return nil
}

// accessKeyMatches is 1 when want is a well-formed access key equal to got,
// compared in constant time (against zeros when want is missing).
func accessKeyMatches(want, got []byte) int {
	if len(want) != wire.AccessKeySize {
		subtle.ConstantTimeCompare(got, make([]byte, wire.AccessKeySize))
		return 0
	}
	return subtle.ConstantTimeCompare(want, got)
}
