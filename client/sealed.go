package client

import (
	"context"
	"errors"
	"fmt"

	"sotto/client/content"
	"sotto/client/sealedsender"
	"sotto/client/transport"
	"sotto/signal/sealed"
	"sotto/wire"
)

// Sealed sender (DESIGN §4) lives in package sealedsender: the profile
// key and its state across the account's devices, the contacts' keys, the
// pinned trust root, the sender certificate and the sealed connection.
// This file wires a sealedsender.Sender into the client and holds what
// needs the rest of the client: the fallback decision (the user's setting
// and the organization's policy), the refresh (the organization's
// documents), and the events.
//
// Sealed sender that the relay cannot switch off behind the user's back:
// a device re-uploads its own access key on every authenticated connect
// (Connect), so that a relay whose access_keys row was lost or altered is
// set right by the recipient itself. A sender whose sealed send is refused
// (UNAUTHENTICATED), or that holds a contact's profile key but gets no
// sender certificate, tries once more with a fresh certificate and
// connection; if that is refused too, the message is not sent
// (ErrSealedRefused) unless the user allowed the fallback
// (Settings.SealedFallback) and the organization's policy does not forbid
// it (Policy.sealed_only). A fallback that does happen is counted
// (SealedDowngrades) and reported (EventSealedDowngrade).

// SealedSenderError reports a sealed message that was refused (see
// sealedsender.Error).
type SealedSenderError = sealedsender.Error

// ErrStaleProfileKey: the relay holds an access key of a newer epoch than
// this device's profile key (sealedsender.ErrStaleProfileKey).
var ErrStaleProfileKey = sealedsender.ErrStaleProfileKey

// EventSealedDowngrade: a message to Event.User went out with the sender
// named because the relay refused the sealed send and the user's setting
// allowed the fallback.
const EventSealedDowngrade EventKind = 300

// ErrSealedRefused: the relay refused sealed delivery and the message was
// not sent, because the fallback to a send naming the sender is off (the
// default; Settings.SealedFallback) or forbidden by the organization.
var ErrSealedRefused = errors.New("client: the relay refused sealed delivery and the message was not sent")

// newSealedSender makes the client's sealedsender.Sender.
func (c *Client) newSealedSender() *sealedsender.Sender {
	return sealedsender.New(sealedsender.Config{
		Store:           c.db,
		User:            c.acct.Username,
		DeviceID:        c.acct.DeviceID,
		Identity:        c.identity,
		RelayURL:        c.acct.Relay,
		Transport:       c.opts.Transport,
		Now:             c.opts.Now,
		Logger:          c.log,
		MemberAccessKey: c.memberAccessKey, // orgctl.go
	})
}

// ProfileKey returns the account's profile key, making it on first use.
func (c *Client) ProfileKey(ctx context.Context) ([]byte, error) { return c.sealed.ProfileKey(ctx) }

// SendsSealed reports whether messages to user go sealed: this device pinned
// a sealed-sender trust root and holds user's profile key.
func (c *Client) SendsSealed(ctx context.Context, user string) (bool, error) {
	return c.sealed.SendsSealed(ctx, normalize(user))
}

// SealedDowngrades is how many messages this device sent naming their
// sender after the relay refused to deliver them sealed.
func (c *Client) SealedDowngrades(ctx context.Context) (uint64, error) {
	return c.sealed.Downgrades(ctx)
}

// uploadOwnAccessKey sets this account's access key at the relay.
func (c *Client) uploadOwnAccessKey(ctx context.Context, conn *transport.Conn) error {
	return c.sealed.UploadOwnAccessKey(ctx, conn)
}

// learnProfileKey keeps a profile key that arrived inside Content, in the
// receive transaction; r says what to do after commit (keyStateChanged).
func (c *Client) learnProfileKey(ctx context.Context, tx kv, from string, ct *content.Content, r *received) error {
	l, err := c.sealed.Learn(ctx, tx, from, ct)
	if err != nil {
		return err
	}
	r.keyState = r.keyState || l.Changed
	r.keyStateRotated = r.keyStateRotated || l.Rotated
	return nil
}

// decryptSealed decrypts, inside the receive transaction, the inner
// message of a sealed envelope whose outer layer was opened (u): see
// sealedsender.Sender.Decrypt. A known contact's changed key the
// pipeline's vetting did not see is checked in the key log.
func (c *Client) decryptSealed(ctx context.Context, ss *sigStore, env *wire.Envelope, u *sealed.Content) (*wire.Envelope, []byte, int, error) {
	c.noteDecrypt()
	return c.sealed.Decrypt(ctx, ss.db, ss.first.sealedStores(ss), env, u, func(user string, key []byte) error {
		return ss.first.vetCertificate(ctx, ss.db, user, key)
	})
}

// sealedFallbackAllowed reports whether a refused sealed send may go out
// naming the sender: the user's setting allows it and the organization's
// policy does not forbid it.
func (c *Client) sealedFallbackAllowed(ctx context.Context) (bool, error) {
	s, err := c.Settings(ctx)
	if err != nil {
		return false, err
	}
	return s.SealedFallback && policyIn(ctx, c.db).SealedFallbackAllowed(), nil
}

// refreshSealed is what a sender can refresh before it tries a refused
// sealed send once more: the cached sender certificate and the sealed
// connection, the organization's documents (a newer member access key),
// and then the route to `to` (sealedsender.Sender.Reroute).
func (c *Client) refreshSealed(ctx context.Context, conn *transport.Conn, to string, refused []byte) ([]byte, *sealed.SenderCertificate, error) {
	c.sealed.Reset()
	c.syncOrg(ctx, conn)
	return c.sealed.Reroute(ctx, conn, to, refused)
}

// mayFallback returns nil when a send refused sealed (cause) may go out
// naming its sender, and ErrSealedRefused otherwise.
func (c *Client) mayFallback(ctx context.Context, to string, cause error) error {
	ok, err := c.sealedFallbackAllowed(ctx)
	if err != nil {
		return err
	}
	if !ok {
		c.log.Info("sealed send refused; message not sent", "to", to, "err", cause)
		return fmt.Errorf("%w (to %s; sending it with the sender named needs the sealed-fallback setting, unless the organization forbids it): %w", ErrSealedRefused, to, cause)
	}
	return nil
}

// noteDowngrade counts a send that went out naming its sender after a
// sealed refusal, logs it and reports it to the UI.
func (c *Client) noteDowngrade(ctx context.Context, to string) {
	c.log.Info("sealed send refused; sent with the sender named (sealed-fallback is on)", "to", to)
	if err := c.sealed.NoteDowngrade(ctx); err != nil {
		c.log.Warn("sealed downgrade not counted", "err", err)
	}
	c.emit(Event{Kind: EventSealedDowngrade, User: to})
}
