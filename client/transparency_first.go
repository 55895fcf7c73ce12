package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"sotto/client/transport"
	"sotto/wire"
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
//     (checkServedKey: a head signed with the pinned log key, the proof of
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

// AlarmUnloggedSender is raised when a first message from a user carries an
// identity key that the log does not bind to that user (or the relay
// serves no key for them): someone, likely the relay, sent it in their
// name. The message was refused.
const AlarmUnloggedSender AlarmKind = "unlogged-sender"

// ErrSenderNotInLog is returned (and reported in an EventError, wrapped
// with a *TransparencyAlarm or ErrKeyNotInLog or ErrFork) when a first
// message from a user arrives under an identity key the key transparency
// log is not proven to hold for them. The message is dropped.
var ErrSenderNotInLog = errors.New("client: a first message's identity key is not the one the key transparency log holds for its sender")

// firstContact is the receive transaction's check of first keys: keys in
// vetted were proven in the log for their user by checkSender.
type firstContact struct {
	vetted map[string][]byte
}

// needLookupError rolls the receive transaction back: user's first key must
// be checked against the log (outside the transaction) first.
type needLookupError struct {
	user string
	key  []byte
}

func (e *needLookupError) Error() string {
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
	pub, err := logKey(ctx, db)
	if err != nil || pub == nil {
		return err
	}
	return &needLookupError{user: user, key: bytes.Clone(key)}
}

// checkSender checks that key is the identity key the log binds to user. It
// returns nil when proven, an error wrapping ErrSenderNotInLog (an alarm is
// raised) when the message must be refused, and another error when the
// check could not be made. Alarms are queued; the caller flushes them.
func (c *Client) checkSender(ctx context.Context, conn *transport.Conn, user string, key []byte) error {
	resp, err := conn.GetIdentity(ctx, user)
	if transport.Code(err) == wire.ErrorCode_NOT_FOUND {
		return fmt.Errorf("%w: %w", ErrSenderNotInLog, c.alarm(&TransparencyAlarm{Kind: AlarmUnloggedSender, User: user,
			Detail: fmt.Sprintf("the relay delivered a first message from %s but serves no identity key for %s; it was refused", user, user)}))
	}
	if err != nil {
		return fmt.Errorf("client: identity of %s: %w", user, err)
	}
	if err := c.checkServedKey(ctx, conn, c.db, user, resp.IdentityKey, resp.Transparency); err != nil {
		if errors.Is(err, ErrKeyNotInLog) || errors.Is(err, ErrFork) {
			return fmt.Errorf("%w: %w", ErrSenderNotInLog, err)
		}
		return err
	}
	if !sameKey(resp.IdentityKey, key) {
		p := resp.Transparency
		return fmt.Errorf("%w: %w", ErrSenderNotInLog, c.alarm(&TransparencyAlarm{Kind: AlarmUnloggedSender, User: user,
			Detail: fmt.Sprintf("a first message from %s came with an identity key that is not the one the key log holds for %s: someone else sent it in their name; it was refused", user, user),
			HeadA:  p.GetSignedHead(), Leaf: p.GetLeaf(), LeafIndex: p.GetLeafIndex()}))
	}
	return nil
}
