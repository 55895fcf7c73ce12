package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/sealed"
)

// Sealed sender that the relay cannot switch off behind the user's back.
//
// A device re-uploads its own access key on every authenticated connect,
// so that a relay whose access_keys row was lost or altered is set right
// by the recipient itself (the sender cannot fix the recipient's key).
//
// A sender whose sealed send is refused (UNAUTHENTICATED), or that holds a
// contact's profile key but gets no sender certificate, tries once more
// with a fresh certificate and connection; if that is refused too, the
// message is not sent (ErrSealedRefused) unless the user allowed the
// fallback (Settings.SealedFallback) and the organization's policy does not
// forbid it (Policy.sealed_only). A fallback that does happen is counted
// (SealedDowngrades) and reported (EventSealedDowngrade).

// EventSealedDowngrade: a message to Event.User went out with the sender
// named because the relay refused the sealed send and the user's setting
// allowed the fallback.
const EventSealedDowngrade EventKind = 300

// ErrSealedRefused: the relay refused sealed delivery and the message was
// not sent, because the fallback to a send naming the sender is off (the
// default; Settings.SealedFallback) or forbidden by the organization.
var ErrSealedRefused = errors.New("client: the relay refused sealed delivery and the message was not sent")

var keyDowngrades = []byte("downgrades")

// uploadOwnAccessKey sets this account's access key at the relay, on every
// authenticated connect: it is one small idempotent request, and a relay
// that lost or altered the key (which turns every contact's sealed send
// into a refusal) is set right without waiting for anyone to notice.
func (c *Client) uploadOwnAccessKey(ctx context.Context, conn *transport.Conn) error {
	if _, err := loadTrustRoot(ctx, c.db); err != nil {
		return nil // this relay does no sealed sender
	}
	st, err := loadKeyState(ctx, c.db)
	if err != nil {
		return fmt.Errorf("client: profile key state: %w", err)
	}
	if st.key == nil {
		return nil // none yet (it is made, and uploaded, before it is first shared)
	}
	return c.uploadAccessKey(ctx, conn, st)
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
// sealed send once more: it drops the cached sender certificate and the
// sealed connection, fetches the organization's documents (a newer member
// access key) and works out the route to `to` again. When the relay
// refused the access key `refused` (derived from the contact's profile key,
// which may be stale), the member access key is tried instead, if there is
// one. An error means there is still no sealed route (a nil error always
// comes with a certificate).
func (c *Client) refreshSealed(ctx context.Context, conn *transport.Conn, to string, refused []byte) ([]byte, *sealed.SenderCertificate, error) {
	c.sealed.mu.Lock()
	c.sealed.cert = nil
	old := c.sealed.conn
	c.sealed.conn = nil
	c.sealed.mu.Unlock()
	if old != nil {
		old.Close()
	}
	c.syncOrg(ctx, conn)
	ak, cert, err := c.sealedRoute(ctx, conn, to)
	if err == nil && cert == nil {
		err = errors.New("client: no sealed route after refreshing")
	}
	if err != nil {
		return nil, nil, err
	}
	if refused != nil && bytes.Equal(ak, refused) {
		if mk := c.memberAccessKey(ctx); mk != nil {
			ak = mk
		}
	}
	return ak, cert, nil
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
	n, err := c.SealedDowngrades(ctx)
	if err == nil {
		err = c.db.Put(ctx, tblSealed, keyDowngrades, binary.BigEndian.AppendUint64(nil, n+1))
	}
	if err != nil {
		c.log.Warn("sealed downgrade not counted", "err", err)
	}
	c.emit(Event{Kind: EventSealedDowngrade, User: to})
}

// SealedDowngrades is how many messages this device sent naming their
// sender after the relay refused to deliver them sealed.
func (c *Client) SealedDowngrades(ctx context.Context) (uint64, error) {
	b, err := c.db.Get(ctx, tblSealed, keyDowngrades)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("client: sealed downgrade count: %d bytes", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
