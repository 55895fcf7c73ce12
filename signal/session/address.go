package session

import (
	"errors"
	"io"
	"strconv"

	"sotto/signal/keys"
)

// Address names one device of one account.
type Address struct {
	Name     string
	DeviceID uint32
}

// String returns "name.device".
func (a Address) String() string { return a.Name + "." + strconv.FormatUint(uint64(a.DeviceID), 10) }

// Direction tells an IdentityStore why trust is being checked.
type Direction int

// Directions of use of a remote identity.
const (
	Sending Direction = iota
	Receiving
)

// Message types as libsignal numbers them.
const (
	MessageTypeSignal = 2 // SignalMessage ("whisper")
	MessageTypePreKey = 3 // PreKeySignalMessage
)

// Errors callers branch on with errors.Is.
var (
	ErrInvalidMessage    = errors.New("session: invalid message")
	ErrDuplicateMessage  = errors.New("session: duplicate message")
	ErrUntrustedIdentity = errors.New("session: untrusted identity")
	ErrNoSession         = errors.New("session: no session")
	ErrInvalidKeyID      = errors.New("session: no such prekey")
	ErrBadSignature      = errors.New("session: bad prekey signature")
	ErrInvalidRecord     = errors.New("session: invalid record")
	ErrStaleSession      = errors.New("session: unacknowledged session too old")
	// ErrNoPQRatchet: the peer's messages carry no post-quantum ratchet
	// (SPQR) data; Sotto refuses such sessions rather than fall back.
	ErrNoPQRatchet = errors.New("session: peer does not run the post-quantum ratchet (SPQR)")
)

// IdentityKeyPair is the long-term identity key pair (see package keys).
type IdentityKeyPair = keys.IdentityKeyPair

// GenerateIdentityKeyPair makes a new identity key pair.
func GenerateIdentityKeyPair(rand io.Reader) (*IdentityKeyPair, error) {
	return keys.GenerateIdentityKeyPair(rand)
}

// ParseIdentityKeyPair parses IdentityKeyPair.Serialize's output.
func ParseIdentityKeyPair(b []byte) (*IdentityKeyPair, error) { return keys.ParseIdentityKeyPair(b) }
