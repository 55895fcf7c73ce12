package sealed

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"time"

	"sotto/signal/keys"
	"sotto/signal/session"
)

// Encrypt encrypts plaintext for remote with the session in s, wraps it with
// the sender certificate, hint and group id, and seals it to remote's
// identity key (libsignal's sealed_sender_encrypt, with the hint and group
// id of UnidentifiedSenderMessageContent). The identity key for remote must
// be known (a session exists), else the error wraps session.ErrNoSession.
func Encrypt(ctx context.Context, rand io.Reader, s session.Stores, remote session.Address, cert *SenderCertificate, plaintext []byte, hint ContentHint, groupID []byte, now time.Time) ([]byte, error) {
	ours, err := s.Identity.IdentityKeyPair(ctx)
	if err != nil {
		return nil, fmt.Errorf("sealed: local identity: %w", err)
	}
	if !ours.PublicKey().Equal(cert.IdentityKey) {
		return nil, fmt.Errorf("sealed: the sender certificate names another identity key than ours")
	}
	theirBytes, err := s.Identity.Identity(ctx, remote)
	if err != nil {
		return nil, fmt.Errorf("sealed: identity of %s: %w", remote, err)
	}
	if theirBytes == nil {
		return nil, fmt.Errorf("sealed: no identity key for %s: %w", remote, session.ErrNoSession)
	}
	theirs, err := keys.ParsePublicKey(theirBytes)
	if err != nil {
		return nil, fmt.Errorf("sealed: identity of %s: %w", remote, err)
	}
	typ, inner, err := session.Encrypt(ctx, s, remote, plaintext, now)
	if err != nil {
		return nil, err
	}
	c, err := NewContent(typ, cert, inner, hint, groupID)
	if err != nil {
		return nil, err
	}
	return Seal(rand, ours, theirs, c)
}

// Result is a decrypted sealed message.
type Result struct {
	Sender    session.Address // from the validated certificate
	E164      string
	Plaintext []byte
	Type      int // the inner message type (TypeSignal or TypePreKey)
	Hint      ContentHint
	GroupID   []byte
}

// Decrypt unseals msg, validates its sender certificate against trustRoot
// at now, refuses a message claiming to come from local itself, refuses a
// certificate whose identity key differs from the identity key held for the
// sender (ErrIdentityMismatch), and decrypts the inner message with the
// session of the certificate's sender (libsignal's sealed_sender_decrypt,
// plus the held-identity check).
func Decrypt(ctx context.Context, rand io.Reader, s session.Stores, msg []byte, trustRoot keys.PublicKey, now time.Time, local session.Address) (*Result, error) {
	ours, err := s.Identity.IdentityKeyPair(ctx)
	if err != nil {
		return nil, fmt.Errorf("sealed: local identity: %w", err)
	}
	c, err := Unseal(ours, msg)
	if err != nil {
		return nil, err
	}
	return DecryptUnsealed(ctx, rand, s, c, trustRoot, now, local)
}

// DecryptUnsealed is Decrypt after Unseal: a receiver that opens the outer
// layer first (to learn the sender and vet its key before its own
// transaction) decrypts the inner message with it, and nothing twice.
func DecryptUnsealed(ctx context.Context, rand io.Reader, s session.Stores, c *Content, trustRoot keys.PublicKey, now time.Time, local session.Address) (*Result, error) {
	if err := c.Sender.Validate(trustRoot, now); err != nil {
		return nil, err
	}
	from := session.Address{Name: c.Sender.Sender, DeviceID: c.Sender.DeviceID}
	if from == local {
		return nil, ErrSelfSend
	}
	certKey := c.Sender.IdentityKey.Serialize()
	if err := checkHeld(ctx, s.Identity, from, certKey); err != nil {
		return nil, err
	}
	if c.Type != TypeSignal && c.Type != TypePreKey {
		return nil, fmt.Errorf("%w: inner message type %d cannot be decrypted here", ErrInvalidMessage, c.Type)
	}
	pt, err := session.Decrypt(ctx, rand, s, from, c.Type, c.Contents)
	if err != nil {
		return nil, err
	}
	// A first (prekey) message saved the identity it carries: it must be
	// the certificate's too.
	if err := checkHeld(ctx, s.Identity, from, certKey); err != nil {
		return nil, err
	}
	return &Result{Sender: from, E164: c.Sender.E164, Plaintext: pt, Type: c.Type, Hint: c.Hint, GroupID: c.GroupID}, nil
}

func checkHeld(ctx context.Context, ids session.IdentityStore, from session.Address, certKey []byte) error {
	held, err := ids.Identity(ctx, from)
	if err != nil {
		return fmt.Errorf("sealed: identity of %s: %w", from, err)
	}
	if held != nil && subtle.ConstantTimeCompare(held, certKey) != 1 {
		return fmt.Errorf("%w (%s)", ErrIdentityMismatch, from)
	}
	return nil
}
