package client

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"sotto/client/keylog"
	"sotto/client/transport"
	"sotto/signal/sealed"
	"sotto/signal/session"
)

// Key changes (key transparency for known contacts). When a message from a
// known contact carries an identity key other than the one stored for them
// (a PreKey message after they re-enrolled, or a relay impersonating them),
// the receive transaction would replace the stored key. Before that is
// kept, the new key goes through the same check as a first contact's
// (transparency_first.go):
//  1. after decryption, vetChanged finds the users whose stored key the
//     transaction replaced and rolls it back (*needLookupError, changed),
//     so the old key, the old session and the message are untouched;
//  2. checkLogged asks the relay for the contact's identity, checks its
//     inclusion proof under a head consistent with the newest verified one
//     (keylog.Log.CheckServedKey), and requires the message's key to be the logged one;
//  3. the envelope is processed again with that key allowed: the contact is
//     then marked changed (unverified, sending blocked until accepted), as
//     any key change was before.
//
// A sealed message whose sender certificate names a known contact with
// another key (sealed.ErrIdentityMismatch) goes through the same lookup;
// once the certificate's key is proven, the message is opened again and
// must leave that key stored (its inner message is a PreKey message under
// the new key), or it is refused as before.
//
// Refusals and failures are handled as for a first contact: a key the log
// does not hold for the contact, a served key without a valid proof, or a
// fork refuses the message (ErrKeyChangeNotInLog and ErrSenderNotInLog, with
// an alarm): it is acknowledged and dropped, and the old key stays. A check
// that could not be made leaves it queued.
//
// keylog.Log.CheckServedKey also keeps, per user, the newest leaf it has seen proven
// for them (the "bound" records). A key proven only by an older leaf than
// one that already bound another key to the same user is a rollback to a
// superseded key (AlarmStaleBinding), refused everywhere a served key is
// checked: sends, refreshes, first contacts and key changes; so is the same
// leaf with another key. A leaf proven inside a transaction that then rolls
// back (a send stopped by the changed key it was served, which markChanged
// records outside it) is remembered all the same.

// vetChanged runs in the receive transaction after decryption: users are
// those whose stored identity key the transaction replaced. A replacement
// not yet proven in the log rolls the transaction back for a lookup; a
// sealed message opened under a proven certificate key must have left that
// key stored. A nil f, or no pinned log key, lets everything through.
func (f *firstContact) vetChanged(ctx context.Context, db kv, users []string) error {
	if f == nil || (len(users) == 0 && len(f.certs) == 0) {
		return nil
	}
	pub, err := keylog.LogKey(ctx, db)
	if err != nil || pub == nil {
		return err
	}
	for u, k := range f.certs {
		rec, err := loadIdentity(ctx, db, u)
		if err != nil {
			return err
		}
		if rec == nil || !sameKey(rec.Key, k) {
			// The certificate's key was proven, but the message did not
			// come under it (an old session): refused as before.
			return &SealedSenderError{Sender: u, Err: fmt.Errorf("%w (%s)", sealed.ErrIdentityMismatch, u)}
		}
	}
	users = slices.Clone(users)
	slices.Sort(users)
	for _, u := range slices.Compact(users) {
		rec, err := loadIdentity(ctx, db, u)
		if err != nil {
			return err
		}
		if rec == nil {
			continue
		}
		if k, ok := f.vetted[u]; ok && sameKey(k, rec.Key) {
			continue
		}
		return &needLookupError{user: u, key: bytes.Clone(rec.Key), changed: true}
	}
	return nil
}

// vetCertificate is called when a sealed message's certificate names user,
// a known contact, with key, which is not the key held for them: with a
// pinned log key it asks for a lookup (the key may have changed honestly);
// otherwise, or on the envelope's second reading, the message is refused
// as before (nil).
func (f *firstContact) vetCertificate(ctx context.Context, db kv, user string, key []byte) error {
	if f == nil || f.vetted != nil {
		return nil
	}
	pub, err := keylog.LogKey(ctx, db)
	if err != nil || pub == nil {
		return err
	}
	return &needLookupError{user: user, key: bytes.Clone(key), changed: true, cert: true}
}

// allow records that l's key was proven in the log for l's user, for the
// envelope's second reading.
func (f *firstContact) allow(l *needLookupError) {
	f.vetted = map[string][]byte{l.user: l.key}
	if l.cert {
		f.certs = map[string][]byte{l.user: l.key}
	}
}

// sealedStores is what a sealed message is opened with: once a
// certificate's key was proven, it is the key held for its sender (the
// check that the message leaves it stored is vetChanged's).
func (f *firstContact) sealedStores(ss *sigStore) session.Stores {
	st := ss.stores()
	if f != nil && len(f.certs) > 0 {
		st.Identity = certIdentities{sigStore: ss, certs: f.certs}
	}
	return st
}

type certIdentities struct {
	*sigStore
	certs map[string][]byte
}

func (c certIdentities) Identity(ctx context.Context, addr session.Address) ([]byte, error) {
	if k, ok := c.certs[addr.Name]; ok {
		return k, nil
	}
	return c.sigStore.Identity(ctx, addr)
}

// checkLookup checks the key a rolled-back receive transaction asked about.
func (c *Client) checkLookup(ctx context.Context, conn *transport.Conn, l *needLookupError) error {
	return c.checkLogged(ctx, conn, l.user, l.key, l.changed)
}
