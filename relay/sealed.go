package relay

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
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
// the sealed connection against the device's authenticated one). The send
// itself is checked, stored and answered by the one send path of named and
// sealed sends (send.go, fastpath.go); this file keeps the access keys,
// the per-address limit and the sender certificates.
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

// DefaultSealedRate bounds sealed sends per client address key
// (Config.SealedRate).
var DefaultSealedRate = Rate{PerSecond: 50, Burst: 200}

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
		r = DefaultSealedRate
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

func (c *conn) handleSetAccessKey(req *wire.Request, resp *wire.Response) error {
	if err := c.setAccessKey(req.GetSetAccessKey().GetAccessKey(), req.GetSetAccessKey().GetRefuseMemberAccess(), req.GetSetAccessKey().GetEpoch()); err != nil {
		return err
	}
	resp.Body = &wire.Response_SetAccessKey{SetAccessKey: &wire.SetAccessKeyResponse{}}
	return nil
}

func (c *conn) handleSenderCertificate(_ *wire.Request, resp *wire.Response) error {
	r, err := c.senderCertificate()
	if err != nil {
		return err
	}
	resp.Body = &wire.Response_SenderCertificate{SenderCertificate: r}
	return nil
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
	if err := c.s.sealed.keys.SetAccessKey(c.ctx, c.dev.Account, storedAccessKey(key, refuseMember, epoch)); err != nil {
		return err
	}
	c.s.cache.invalidate(c.dev.Account)
	return nil
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

// accessKeyMatches is 1 when want is a well-formed access key equal to got,
// compared in constant time (against zeros when want is missing).
func accessKeyMatches(want, got []byte) int {
	if len(want) != wire.AccessKeySize {
		subtle.ConstantTimeCompare(got, make([]byte, wire.AccessKeySize))
		return 0
	}
	return subtle.ConstantTimeCompare(want, got)
}
