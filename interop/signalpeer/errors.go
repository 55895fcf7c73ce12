package signalpeer

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is the error kind a peer reports, the part of its error text before the colon.
type Kind string

// The error kinds of the signal-peer protocol.
const (
	KindInvalidMessage    Kind = "invalid_message"    // malformed, bad MAC, wrong version, tampered
	KindDuplicateMessage  Kind = "duplicate_message"  // a message key already used
	KindUntrustedIdentity Kind = "untrusted_identity" // the remote identity key changed
	KindNoSession         Kind = "no_session"         // no session, or no identity known
	KindInvalidKeyID      Kind = "invalid_key_id"     // a prekey that does not exist or was used
	KindInvalidArgument   Kind = "invalid_argument"   // a bad request
	KindInternal          Kind = "internal"
	// KindInvalidCertificate is the sealed-sender extension's: a sender certificate
	// not signed by the trust root, badly signed, or expired.
	KindInvalidCertificate Kind = "invalid_certificate"
)

var kinds = map[Kind]bool{
	KindInvalidMessage: true, KindDuplicateMessage: true, KindUntrustedIdentity: true,
	KindNoSession: true, KindInvalidKeyID: true, KindInvalidArgument: true, KindInternal: true,
	KindInvalidCertificate: true,
}

// Error is a failure reply from a peer.
type Error struct {
	Peer   string // the peer's label
	Op     string
	Kind   Kind
	Detail string
}

func (e *Error) Error() string {
	return fmt.Sprintf("signalpeer: %s: %s: %s: %s", e.Peer, e.Op, e.Kind, e.Detail)
}

// Is reports whether target is an *Error of the same Kind (any peer, op and detail), so
// that errors.Is(err, &Error{Kind: KindNoSession}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Op == "" && t.Detail == ""
}

// ErrProtocol reports a reply that breaks the line protocol (bad JSON, wrong id, an
// unknown error kind). The peer is unusable afterwards.
var ErrProtocol = errors.New("signalpeer: protocol violation")

// KindOf returns the Kind of a peer error, or "" when err is not one.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return ""
}

// parseError splits "KIND: detail".
func parseError(peer, op, text string) error {
	kind, detail, _ := strings.Cut(text, ":")
	k := Kind(strings.TrimSpace(kind))
	if !kinds[k] {
		return fmt.Errorf("%w: %s: %s: unknown error kind in %q", ErrProtocol, peer, op, text)
	}
	return &Error{Peer: peer, Op: op, Kind: k, Detail: strings.TrimSpace(detail)}
}
