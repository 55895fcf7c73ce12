package spqr

import "errors"

// Errors. Every error returned wraps one of these.
var (
	// ErrInvalidMessage: an SPQR message that cannot be parsed or does not
	// fit the state (an epoch out of range, a bad encapsulation key).
	ErrInvalidMessage = errors.New("spqr: invalid message")
	// ErrMAC: a header or ciphertext failed its authenticator check.
	ErrMAC = errors.New("spqr: authentication failed")
	// ErrState: a stored state that cannot be parsed or is inconsistent.
	ErrState = errors.New("spqr: invalid state")
	// ErrEncoding: a length the erasure code cannot carry.
	ErrEncoding = errors.New("spqr: bad encoding length")
	// ErrMinimumVersion: the peer's messages are of a version below the
	// session's minimum (a downgrade refused).
	ErrMinimumVersion = errors.New("spqr: peer does not speak the required version")
	// ErrVersionMismatch: a message of another version after negotiation.
	ErrVersionMismatch = errors.New("spqr: version mismatch after negotiation")
	// ErrKeyJump: a message index too far ahead of its chain.
	ErrKeyJump = errors.New("spqr: message index too far ahead")
	// ErrKeyTrimmed: a message key so old it was discarded.
	ErrKeyTrimmed = errors.New("spqr: message key discarded")
	// ErrKeyUsed: a message key already used (a replay).
	ErrKeyUsed = errors.New("spqr: message key already used")
	// ErrEpoch: a message key of an epoch no longer (or not yet) held.
	ErrEpoch = errors.New("spqr: epoch out of range")
)
