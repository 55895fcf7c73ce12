package sealedsender

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/transport"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/wire"
)

// Route returns the access key and a sender certificate when a send to
// `to` goes sealed: not to the own account, the contact's profile key (or
// else the organization's member access key) is known and a trust root is
// pinned. Otherwise both are nil and the send goes authenticated, by
// design. A non-nil error means the send should go sealed but the relay
// gave no valid sender certificate: a refusal like UNAUTHENTICATED.
func (s *Sender) Route(ctx context.Context, conn CertRelay, to string) ([]byte, *sealed.SenderCertificate, error) {
	if to == s.cfg.User {
		return nil, nil, nil
	}
	var ak []byte
	pk, err := s.cfg.Store.Get(ctx, Table, ContactKeyRow(to))
	if err == nil {
		ak, err = sealed.DeriveAccessKey(pk)
	}
	if err != nil {
		// No profile key of theirs yet: the organization's member
		// access key, when there is one, seals the first messages.
		if ak = s.cfg.MemberAccessKey(ctx); ak == nil {
			return nil, nil, nil
		}
	}
	cert, err := s.Certificate(ctx, conn)
	if errors.Is(err, ErrNoTrustRoot) {
		return nil, nil, nil
	}
	if err != nil {
		return ak, nil, fmt.Errorf("client: no sender certificate: %w", err)
	}
	return ak, cert, nil
}

// Reroute works out the route to `to` again after Reset (and after the
// caller fetched the organization's documents, for a newer member access
// key). When the relay refused the access key `refused` (derived from the
// contact's profile key, which may be stale), the member access key is
// tried instead, if there is one. An error means there is still no sealed
// route (a nil error always comes with a certificate).
func (s *Sender) Reroute(ctx context.Context, conn CertRelay, to string, refused []byte) ([]byte, *sealed.SenderCertificate, error) {
	ak, cert, err := s.Route(ctx, conn, to)
	if err == nil && cert == nil {
		err = errors.New("client: no sealed route after refreshing")
	}
	if err != nil {
		return nil, nil, err
	}
	if refused != nil && bytes.Equal(ak, refused) {
		if mk := s.cfg.MemberAccessKey(ctx); mk != nil {
			ak = mk
		}
	}
	return ak, cert, nil
}

// Certificate returns a cached certificate, or a new one from the relay,
// checked against the pinned trust root and the own identity.
func (s *Sender) Certificate(ctx context.Context, conn CertRelay) (*sealed.SenderCertificate, error) {
	root, err := TrustRoot(ctx, s.cfg.Store)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	s.mu.Lock()
	cert := s.cert
	s.mu.Unlock()
	if cert != nil && now.Add(certRefresh).Before(cert.Expires) {
		return cert, nil
	}
	resp, err := conn.SenderCertificate(ctx)
	if err != nil {
		return nil, err
	}
	cert, err = sealed.ParseSenderCertificate(resp.Certificate)
	if err != nil {
		return nil, err
	}
	if err := cert.Validate(root, now); err != nil {
		return nil, err
	}
	if cert.Sender != s.cfg.User || cert.DeviceID != s.cfg.DeviceID || !cert.IdentityKey.Equal(s.cfg.Identity.PublicKey()) {
		return nil, fmt.Errorf("client: the relay's sender certificate names %s.%d, not this device", cert.Sender, cert.DeviceID)
	}
	s.mu.Lock()
	s.cert = cert
	s.mu.Unlock()
	return cert, nil
}

// Reset drops the cached sender certificate and the sealed connection:
// what a sender can refresh before it tries a refused sealed send once
// more.
func (s *Sender) Reset() {
	s.mu.Lock()
	s.cert = nil
	old := s.conn
	s.conn = nil
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

// Close closes the sealed connection (the certificate stays cached).
func (s *Sender) Close() {
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	s.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// Send sends on the unauthenticated connection, dialing it when needed
// and once more when it was closed under the send (the relay closes
// connections that stay unauthenticated past its login timeout). Sends
// are idempotent by message id.
func (s *Sender) Send(ctx context.Context, req *wire.SealedSendRequest) (*wire.SendMessageResponse, error) {
	var lastErr error
	for range 2 {
		conn, err := s.sealedConn(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := conn.SealedSend(ctx, req)
		var te *transport.Error
		if err == nil || errors.As(err, &te) || ctx.Err() != nil {
			return resp, err
		}
		lastErr = err
		s.mu.Lock()
		if s.conn == conn {
			s.conn = nil
		}
		s.mu.Unlock()
		conn.Close()
	}
	return nil, lastErr
}

// sealedConn returns the unauthenticated connection, dialing it (with no
// lock held) when there is none or it ended. Of two dialing at once, the
// first to finish is kept and the other closed.
func (s *Sender) sealedConn(ctx context.Context) (*transport.Conn, error) {
	if conn := s.liveConn(); conn != nil {
		return conn, nil
	}
	conn, err := transport.Dial(ctx, s.cfg.RelayURL, s.cfg.Transport)
	if err != nil {
		return nil, fmt.Errorf("client: sealed connection: %w", err)
	}
	if cur := s.liveConn(); cur != nil {
		conn.Close()
		return cur, nil
	}
	s.mu.Lock()
	cur := s.conn
	if cur == nil {
		s.conn = conn
	}
	s.mu.Unlock()
	if cur != nil { // installed meanwhile
		conn.Close()
		return cur, nil
	}
	return conn, nil
}

// liveConn is the unauthenticated connection when it is open; one that
// ended is dropped (and closed, outside the lock).
func (s *Sender) liveConn() *transport.Conn {
	s.mu.Lock()
	conn := s.conn
	if conn == nil {
		s.mu.Unlock()
		return nil
	}
	select {
	case <-conn.Done():
		s.conn = nil
		s.mu.Unlock()
		conn.Close()
		return nil
	default:
		s.mu.Unlock()
		return conn
	}
}

// Unseal opens a sealed envelope's outer layer with this device's
// identity key and validates its sender certificate: the receive
// pipeline's first step, before any transaction. A refusal is an *Error.
func (s *Sender) Unseal(ctx context.Context, env *wire.Envelope) (*sealed.Content, error) {
	root, err := TrustRoot(ctx, s.cfg.Store)
	if errors.Is(err, ErrNoTrustRoot) {
		return nil, &Error{Err: err}
	}
	if err != nil {
		return nil, err
	}
	u, err := sealed.Unseal(s.cfg.Identity, env.Content)
	if err != nil {
		return nil, &Error{Err: err}
	}
	if err := u.Sender.Validate(root, s.at(env)); err != nil {
		return nil, &Error{Sender: u.Sender.Sender, Device: u.Sender.DeviceID, Err: err}
	}
	return u, nil
}

// at is the time a sealed envelope's certificate must be valid at.
func (s *Sender) at(env *wire.Envelope) time.Time {
	if env.ServerTimestampMs == 0 {
		return s.cfg.Now()
	}
	return time.UnixMilli(env.ServerTimestampMs)
}

// Decrypt decrypts, inside the receive transaction (db and stores are
// its), the inner message of a sealed envelope whose outer layer Unseal
// opened (u), with the sender's session. It returns a copy of env naming
// the sender from the validated certificate, the plaintext, and the inner
// message type. A certificate naming a contact under another identity key
// than the one held for them is passed to vetChanged (the key log's
// check) before it is refused: its error, when not nil, is returned
// instead of the refusal.
func (s *Sender) Decrypt(ctx context.Context, db KV, stores session.Stores, env *wire.Envelope, u *sealed.Content, vetChanged func(user string, key []byte) error) (*wire.Envelope, []byte, int, error) {
	root, err := TrustRoot(ctx, db)
	if errors.Is(err, ErrNoTrustRoot) {
		return nil, nil, 0, &Error{Err: err}
	}
	if err != nil {
		return nil, nil, 0, err
	}
	local := session.Address{Name: s.cfg.User, DeviceID: s.cfg.DeviceID}
	res, err := sealed.DecryptUnsealed(ctx, rand.Reader, stores, u, root, s.at(env), local)
	if err != nil && !Refusal(err) {
		// The local store failed, not the envelope: it stays queued.
		return nil, nil, 0, err
	}
	if err != nil {
		se := &Error{Sender: u.Sender.Sender, Device: u.Sender.DeviceID, Err: err}
		if errors.Is(err, sealed.ErrIdentityMismatch) && u.Sender.Sender != s.cfg.User && vetChanged != nil {
			if lerr := vetChanged(u.Sender.Sender, u.Sender.IdentityKey.Serialize()); lerr != nil {
				return nil, nil, 0, lerr
			}
		}
		return nil, nil, 0, se
	}
	out := proto.CloneOf(env)
	out.Sender, out.SenderDevice, out.Type = res.Sender.Name, res.Sender.DeviceID, uint32(res.Type)
	return out, res.Plaintext, res.Type, nil
}

// Refusal reports whether err is about the sealed envelope itself (it
// will never open), as opposed to a failure of the local store, after
// which the envelope must stay queued rather than be acknowledged.
func Refusal(err error) bool {
	for _, e := range []error{
		sealed.ErrInvalidMessage, sealed.ErrUnknownVersion, sealed.ErrUntrustedCertificate,
		sealed.ErrExpiredCertificate, sealed.ErrKeyMismatch, sealed.ErrIdentityMismatch, sealed.ErrSelfSend,
		session.ErrDuplicateMessage, session.ErrInvalidMessage, session.ErrNoSession,
		session.ErrUntrustedIdentity, session.ErrInvalidKeyID, session.ErrBadSignature, session.ErrInvalidRecord,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
