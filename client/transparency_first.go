package client

import (
	"bytes"
	"context"
	"fmt"

	"sotto/client/keylog"
	"sotto/client/transport"
)

// First contact (key transparency for received messages). A first message
// from a user this device has never known (a PreKey message, authenticated
// or sealed) carries the identity key the new session is built on. Trusted
// as it is, a relay could impersonate anybody to a new contact with a key
// of its own. So before that key is saved, the receive path
//  1. rolls the receive transaction back (the SaveIdentity of a first key
//     fails with a *needLookupError: nothing is stored),
//  2. asks the relay for the sender's identity with its inclusion proof and
//     checks it exactly as the send path checks a served key
//     (keylog.Log.CheckServedKey: a head signed with the pinned log key, the proof of
//     that (username, key), consistency with the newest verified head),
//  3. requires the message's key to be that logged key, and
//  4. processes the envelope again with the key vetted.
//
// A key that is not the logged one, a served key without a valid proof, a
// fork, or a relay that says the sender does not exist refuses the message
// (ErrSenderNotInLog, with an alarm): it is acknowledged and dropped, and
// nothing of it is stored or shown. A check that could not be made (the
// relay did not answer, a local store failure) leaves it queued for the
// next connection. A device without a pinned log key checks nothing (trust
// on first use, as before).

// firstContact is the receive transaction's check of first keys: keys in
// vetted were proven in the log for their user by checkLogged.
type firstContact struct {
	vetted map[string][]byte
	// certs: sealed certificate keys proven for a known contact whose
	// held key differs (transparency_change.go).
	certs map[string][]byte
}

// needLookupError rolls the receive transaction back: user's first key must
// be checked against the log (outside the transaction) first.
type needLookupError struct {
	user string
	key  []byte
	// changed: user is a known contact whose key changed; cert: the key is
	// a sealed sender certificate's (transparency_change.go).
	changed, cert bool
}

func (e *needLookupError) Error() string {
	if e.changed {
		return fmt.Sprintf("client: the changed identity key of %s awaits its key transparency check", e.user)
	}
	return fmt.Sprintf("client: the first message from %s awaits its key transparency check", e.user)
}

// vet lets the first identity key of user be saved only when it was proven
// in the log; a nil f, or no pinned log key, lets every key through.
func (f *firstContact) vet(ctx context.Context, db kv, user string, key []byte) error {
	if f == nil {
		return nil
	}
	if k, ok := f.vetted[user]; ok && sameKey(k, key) {
		return nil
	}
	pub, err := keylog.LogKey(ctx, db)
	if err != nil || pub == nil {
		return err
	}
	return &needLookupError{user: user, key: bytes.Clone(key)}
}

// checkLogged checks that key is the identity key the log binds to user
// (keylog.Log.CheckLogged): the key of a first message, or (changed) the
// new key of a known contact. Alarms are queued; the caller flushes them.
func (c *Client) checkLogged(ctx context.Context, conn *transport.Conn, user string, key []byte, changed bool) error {
	return c.keylog.CheckLogged(ctx, conn, user, key, changed, refusesSender)
}
