package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/content"
	"sotto/client/sessions"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/keys"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/wire"
)

// Sealed sender (DESIGN §4). Every account has a random 32-byte profile key
// in the encrypted store; it rides inside the end-to-end Content of the
// first messages to each contact (and to the own other devices). The relay
// holds the access key derived from it. A client that holds a contact's
// profile key sends to that contact sealed: the Signal message is wrapped in
// libsignal's sealed sender with a sender certificate from the relay, and
// goes over a separate connection that never authenticates, presenting the
// contact's access key. Without the key it sends authenticated.
//
// On receipt the client unseals, validates the certificate against the trust
// root pinned at enrollment, and refuses (SealedSenderError wrapping
// sealed.ErrIdentityMismatch, nothing shown) a certificate whose identity
// key is not the one it holds for the claimed sender; then the sender's
// session decrypts. The certificate itself proves nothing in Sotto's model:
// the relay can mint one for anybody.

const (
	tblSealed = "sealed"
	// certRefresh: a cached sender certificate is replaced this long
	// before it expires.
	certRefresh = time.Hour
	// profileKeySends: how many accepted sends to a contact carry the
	// profile key.
	profileKeySends = 3
)

var (
	keyProfile   = []byte("profile-key")
	keyTrustRoot = []byte("trust-root")
	keyAccessSet = []byte("access-key-uploaded")
)

func contactProfileKey(user string) []byte { return []byte("pk/" + user) }
func profileKeySent(user string) []byte    { return []byte("pk-sent/" + user) }

// SealedSenderError reports a sealed message that was refused: it did not
// unseal, its certificate did not validate, or (Err wraps
// sealed.ErrIdentityMismatch) it names a sender whose identity key is not
// the one this device holds for them — a forged sender. The message is
// dropped and never shown.
type SealedSenderError struct {
	Sender string // as the certificate claims it, when it got that far
	Device uint32
	Err    error
}

func (e *SealedSenderError) Error() string {
	if e.Sender == "" {
		return fmt.Sprintf("client: sealed message refused: %v", e.Err)
	}
	return fmt.Sprintf("client: sealed message claiming to be from %s.%d refused: %v", e.Sender, e.Device, e.Err)
}

func (e *SealedSenderError) Unwrap() error { return e.Err }

// errNoTrustRoot: the relay gave no sealed-sender trust root at enrollment.
var errNoTrustRoot = errors.New("client: no sealed-sender trust root pinned")

// sealedState is the client's sealed-send connection and certificate.
type sealedState struct {
	mu   sync.Mutex
	conn *transport.Conn // never authenticated
	cert *sealed.SenderCertificate
}

func (s *sealedState) close() {
	s.mu.Lock()
	conn := s.conn
	s.conn = nil
	s.mu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

// pinSealedTrustRoot keeps the trust root the relay gave at enrollment.
func pinSealedTrustRoot(ctx context.Context, db kv, root []byte) error {
	if len(root) == 0 {
		return nil
	}
	if _, err := keys.ParsePublicKey(root); err != nil {
		return fmt.Errorf("client: sealed-sender trust root: %w", err)
	}
	return db.Put(ctx, tblSealed, keyTrustRoot, root)
}

func loadTrustRoot(ctx context.Context, db kv) (keys.PublicKey, error) {
	b, err := db.Get(ctx, tblSealed, keyTrustRoot)
	if errors.Is(err, store.ErrNotFound) {
		return keys.PublicKey{}, errNoTrustRoot
	}
	if err != nil {
		return keys.PublicKey{}, err
	}
	return keys.ParsePublicKey(b)
}

// ProfileKey returns the account's profile key, making it on first use.
// Reading and making it is one transaction: two sends racing to make it
// (a delivery receipt and a message) must not each share and upload a key
// of their own, or the relay's access key would not match what a contact
// learned, and the contact's sealed sends would be refused.
func (c *Client) ProfileKey(ctx context.Context) ([]byte, error) {
	var k []byte
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		b, err := tx.Get(ctx, tblSealed, keyProfile)
		if err == nil {
			k = b
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		k = make([]byte, sealed.ProfileKeySize)
		if _, err := rand.Read(k); err != nil {
			return fmt.Errorf("client: profile key: %w", err)
		}
		return tx.Put(ctx, tblSealed, keyProfile, k)
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// ownProfileKey returns the profile key, or nil when there is none and
// this device should not make one: only the account's lowest-numbered
// known device makes it; the others adopt it from that device's syncs
// (learnProfileKey), so that one account does not end up with several.
func (c *Client) ownProfileKey(ctx context.Context) ([]byte, error) {
	b, err := c.db.Get(ctx, tblSealed, keyProfile)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return b, err
	}
	ids, known, err := sessions.Devices(ctx, c.db, c.acct.Username)
	if err != nil {
		return nil, err
	}
	if !known && c.acct.DeviceID != 1 {
		return nil, nil // a linked device that has not heard from its siblings yet
	}
	for _, id := range ids {
		if id < c.acct.DeviceID {
			return nil, nil
		}
	}
	return c.ProfileKey(ctx)
}

// ensureAccessKey uploads the access key of state st, once.
func (c *Client) ensureAccessKey(ctx context.Context, conn *transport.Conn, st *keyState) error {
	ak, err := sealed.DeriveAccessKey(st.key)
	if err != nil {
		return err
	}
	if done, err := c.db.Get(ctx, tblSealed, keyAccessSet); err == nil && bytes.Equal(done, accessKeyMark(ak, st.refusesMember(), st.epoch)) {
		return nil
	}
	return c.uploadAccessKey(ctx, conn, st)
}

// attachProfileKey puts the profile key into ct: on every send to the own
// other devices (with the profile key state, revokesync.go), and while
// fewer than profileKeySends sends to a contact carrying it were accepted.
// It reports whether it did.
func (c *Client) attachProfileKey(ctx context.Context, conn *transport.Conn, to string, ct *content.Content) (bool, error) {
	if _, err := loadTrustRoot(ctx, c.db); err != nil {
		return false, nil // this relay does no sealed sender
	}
	pk, err := c.ownProfileKey(ctx)
	if err != nil || pk == nil {
		return false, err
	}
	st, err := loadKeyState(ctx, c.db)
	if err != nil {
		return false, err
	}
	// Whoever learns the key must be able to use it (and a key adopted
	// from an own device replaces this device's upload).
	if err := c.ensureAccessKey(ctx, conn, st); err != nil {
		c.log.Info("profile key not shared: access key not uploaded", "err", err)
		return false, nil
	}
	if to != c.acct.Username {
		if revoked, err := c.Revoked(ctx, to); err != nil || revoked {
			return false, err // never to a revoked contact (revoke.go)
		}
		b, err := c.db.Get(ctx, tblSealed, profileKeySent(to))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		if len(b) > 0 && int(b[0]) >= profileKeySends {
			return false, nil
		}
	}
	ct.ProfileKey = st.key
	if to == c.acct.Username {
		ct.ProfileKeyState = st.message()
	}
	return true, nil
}

// profileKeyDelivered counts an accepted send that carried the profile key.
func (c *Client) profileKeyDelivered(ctx context.Context, to string) {
	if to == c.acct.Username {
		return
	}
	// The store may have been locked (idle lock) or closed, or ctx ended
	// (the command is exiting), while the send was under way: that send
	// then goes uncounted and the next one carries the key once more,
	// which is harmless.
	n := byte(0)
	b, err := c.db.Get(ctx, tblSealed, profileKeySent(to))
	switch {
	case err == nil && len(b) > 0:
		n = b[0]
	case err == nil, errors.Is(err, store.ErrNotFound):
	case errors.Is(err, store.ErrLocked), ctx.Err() != nil:
		return
	default:
		// Not counted from zero again: the count stays as it is.
		c.log.Warn("profile key send count not read", "err", err)
		return
	}
	if err := c.db.Put(ctx, tblSealed, profileKeySent(to), []byte{n + 1}); err != nil && !errors.Is(err, store.ErrLocked) && ctx.Err() == nil {
		c.log.Warn("profile key send count not saved", "err", err)
	}
}

// learnProfileKey keeps a profile key that arrived inside Content. One from
// the own account (another device) is merged with this device's profile
// key state (revokesync.go): the key of the higher epoch, or of one epoch
// the lower key, is adopted, so that all devices settle on one key; the
// new key is then shared with every contact again (its access key replaces
// the old one at the relay at once).
func (c *Client) learnProfileKey(ctx context.Context, tx kv, from string, ct *content.Content, r *received) error {
	pk := ct.GetProfileKey()
	if len(pk) != sealed.ProfileKeySize {
		return nil
	}
	if from != c.acct.Username {
		return tx.Put(ctx, tblSealed, contactProfileKey(from), pk)
	}
	return c.learnOwnKeyState(ctx, tx, pk, ct, r)
}

// resetProfileKeySends forgets how often the profile key was sent to each
// contact: a new key is shared with every contact again.
func resetProfileKeySends(ctx context.Context, tx kv) error {
	entries, err := tx.List(ctx, tblSealed)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if bytes.HasPrefix(e.Key, []byte("pk-sent/")) {
			if err := tx.Delete(ctx, tblSealed, e.Key); err != nil {
				return err
			}
		}
	}
	return nil
}

// sealedRoute returns the access key and a sender certificate when a send
// to `to` goes sealed: not to the own account, the contact's profile key
// (or else the organization's member access key) is known and a trust
// root is pinned. Otherwise both are nil and the send
// goes authenticated, by design. A non-nil error means the send should go
// sealed but the relay gave no valid sender certificate: a refusal like
// UNAUTHENTICATED (see sendContent).
func (c *Client) sealedRoute(ctx context.Context, conn *transport.Conn, to string) ([]byte, *sealed.SenderCertificate, error) {
	if to == c.acct.Username {
		return nil, nil, nil
	}
	var ak []byte
	pk, err := c.db.Get(ctx, tblSealed, contactProfileKey(to))
	if err == nil {
		ak, err = sealed.DeriveAccessKey(pk)
	}
	if err != nil {
		// No profile key of theirs yet: the organization's member
		// access key, when there is one, seals the first messages.
		if ak = c.memberAccessKey(ctx); ak == nil {
			return nil, nil, nil
		}
	}
	cert, err := c.senderCertificate(ctx, conn)
	if errors.Is(err, errNoTrustRoot) {
		return nil, nil, nil
	}
	if err != nil {
		return ak, nil, fmt.Errorf("client: no sender certificate: %w", err)
	}
	return ak, cert, nil
}

// senderCertificate returns a cached certificate, or a new one from the
// relay, checked against the pinned trust root and the own identity.
func (c *Client) senderCertificate(ctx context.Context, conn *transport.Conn) (*sealed.SenderCertificate, error) {
	root, err := loadTrustRoot(ctx, c.db)
	if err != nil {
		return nil, err
	}
	now := c.opts.Now()
	c.sealed.mu.Lock()
	cert := c.sealed.cert
	c.sealed.mu.Unlock()
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
	if cert.Sender != c.acct.Username || cert.DeviceID != c.acct.DeviceID || !cert.IdentityKey.Equal(c.identity.PublicKey()) {
		return nil, fmt.Errorf("client: the relay's sender certificate names %s.%d, not this device", cert.Sender, cert.DeviceID)
	}
	c.sealed.mu.Lock()
	c.sealed.cert = cert
	c.sealed.mu.Unlock()
	return cert, nil
}

// sendSealed sends on the unauthenticated connection, dialing it when
// needed and once more when it was closed under the send (the relay closes
// connections that stay unauthenticated past its login timeout). Sends are
// idempotent by message id.
func (c *Client) sendSealed(ctx context.Context, req *wire.SealedSendRequest) (*wire.SendMessageResponse, error) {
	var lastErr error
	for range 2 {
		conn, err := c.sealedConn(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := conn.SealedSend(ctx, req)
		var te *transport.Error
		if err == nil || errors.As(err, &te) || ctx.Err() != nil {
			return resp, err
		}
		lastErr = err
		c.sealed.mu.Lock()
		if c.sealed.conn == conn {
			c.sealed.conn = nil
		}
		c.sealed.mu.Unlock()
		conn.Close()
	}
	return nil, lastErr
}

// sealedConn returns the unauthenticated connection, dialing it (with no
// lock held) when there is none or it ended. Of two dialing at once, the
// first to finish is kept and the other closed.
func (c *Client) sealedConn(ctx context.Context) (*transport.Conn, error) {
	if conn := c.liveSealedConn(); conn != nil {
		return conn, nil
	}
	conn, err := transport.Dial(ctx, c.acct.Relay, c.opts.Transport)
	if err != nil {
		return nil, fmt.Errorf("client: sealed connection: %w", err)
	}
	if cur := c.liveSealedConn(); cur != nil {
		conn.Close()
		return cur, nil
	}
	c.sealed.mu.Lock()
	cur := c.sealed.conn
	if cur == nil {
		c.sealed.conn = conn
	}
	c.sealed.mu.Unlock()
	if cur != nil { // installed meanwhile
		conn.Close()
		return cur, nil
	}
	return conn, nil
}

// liveSealedConn is the unauthenticated connection when it is open; one
// that ended is dropped (and closed, outside the lock).
func (c *Client) liveSealedConn() *transport.Conn {
	c.sealed.mu.Lock()
	conn := c.sealed.conn
	if conn == nil {
		c.sealed.mu.Unlock()
		return nil
	}
	select {
	case <-conn.Done():
		c.sealed.conn = nil
		c.sealed.mu.Unlock()
		conn.Close()
		return nil
	default:
		c.sealed.mu.Unlock()
		return conn
	}
}

// unsealEnvelope opens a sealed envelope's outer layer with this device's
// identity key and validates its sender certificate: the receive
// pipeline's first step, before any transaction (pipeline.go). A refusal
// is a *SealedSenderError.
func (c *Client) unsealEnvelope(ctx context.Context, env *wire.Envelope) (*sealed.Content, error) {
	root, err := loadTrustRoot(ctx, c.db)
	if errors.Is(err, errNoTrustRoot) {
		return nil, &SealedSenderError{Err: err}
	}
	if err != nil {
		return nil, err
	}
	u, err := sealed.Unseal(c.identity, env.Content)
	if err != nil {
		return nil, &SealedSenderError{Err: err}
	}
	if err := u.Sender.Validate(root, c.sealedAt(env)); err != nil {
		return nil, &SealedSenderError{Sender: u.Sender.Sender, Device: u.Sender.DeviceID, Err: err}
	}
	return u, nil
}

// sealedAt is the time a sealed envelope's certificate must be valid at.
func (c *Client) sealedAt(env *wire.Envelope) time.Time {
	if env.ServerTimestampMs == 0 {
		return c.opts.Now()
	}
	return time.UnixMilli(env.ServerTimestampMs)
}

// decryptSealed decrypts, inside the receive transaction, the inner
// message of a sealed envelope whose outer layer unsealEnvelope opened (u),
// with the sender's session. It returns a copy of env naming the sender
// from the validated certificate, the plaintext, and the inner message
// type.
func (c *Client) decryptSealed(ctx context.Context, ss *sigStore, env *wire.Envelope, u *sealed.Content) (*wire.Envelope, []byte, int, error) {
	root, err := loadTrustRoot(ctx, ss.db)
	if errors.Is(err, errNoTrustRoot) {
		return nil, nil, 0, &SealedSenderError{Err: err}
	}
	if err != nil {
		return nil, nil, 0, err
	}
	local := session.Address{Name: c.acct.Username, DeviceID: c.acct.DeviceID}
	c.noteDecrypt()
	res, err := sealed.DecryptUnsealed(ctx, rand.Reader, ss.first.sealedStores(ss), u, root, c.sealedAt(env), local)
	if err != nil && !sealedRefusal(err) {
		// The local store failed, not the envelope: it stays queued.
		return nil, nil, 0, err
	}
	if err != nil {
		se := &SealedSenderError{Sender: u.Sender.Sender, Device: u.Sender.DeviceID, Err: err}
		if errors.Is(err, sealed.ErrIdentityMismatch) && u.Sender.Sender != c.acct.Username {
			// A known contact's changed key the pipeline's vetting did
			// not see: checked in the key log.
			if lerr := ss.first.vetCertificate(ctx, ss.db, u.Sender.Sender, u.Sender.IdentityKey.Serialize()); lerr != nil {
				return nil, nil, 0, lerr
			}
		}
		return nil, nil, 0, se
	}
	out := proto.CloneOf(env)
	out.Sender, out.SenderDevice, out.Type = res.Sender.Name, res.Sender.DeviceID, uint32(res.Type)
	return out, res.Plaintext, res.Type, nil
}

// sealedRefusal reports whether err is about the sealed envelope itself
// (it will never open), as opposed to a failure of the local store, after
// which the envelope must stay queued rather than be acknowledged.
func sealedRefusal(err error) bool {
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

// SendsSealed reports whether messages to user go sealed: this device pinned
// a sealed-sender trust root and holds user's profile key.
func (c *Client) SendsSealed(ctx context.Context, user string) (bool, error) {
	user = normalize(user)
	if user == c.acct.Username {
		return false, nil
	}
	if _, err := loadTrustRoot(ctx, c.db); err != nil {
		if errors.Is(err, errNoTrustRoot) {
			return false, nil
		}
		return false, err
	}
	_, err := c.db.Get(ctx, tblSealed, contactProfileKey(user))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
