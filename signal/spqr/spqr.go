package spqr

import (
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	pb "sotto/signal/spqr/internal/statepb"
)

// Version is an SPQR protocol version.
type Version int

// Versions. Version0 is "no SPQR": an empty state, empty messages.
const (
	Version0 Version = 0
	Version1 Version = 1
)

// Limits of the key chain, as libsignal sets them for a session with
// another party (its MAX_FORWARD_JUMPS and MAX_MESSAGE_KEYS).
const (
	MaxJump         = defaultMaxJump
	MaxOutOfOrder   = defaultMaxOOO
	selfSessionJump = ^uint32(0)
)

// Params start a session's SPQR state.
type Params struct {
	Direction Direction // AToB for the session's initiator (Alice)
	// Version offered (Version1), and the lowest the peer may answer with:
	// Version1 refuses a peer that does not speak SPQR.
	Version, MinVersion Version
	// AuthKey is the 32 bytes PQXDH derives for SPQR.
	AuthKey []byte
	// SelfSession lifts the forward-jump bound, as libsignal does for a
	// session with one's own device.
	SelfSession bool
}

// InitialState returns the serialized starting state; Version0 gives the
// empty state.
func InitialState(p Params) ([]byte, error) {
	if p.Version == Version0 {
		return nil, nil
	}
	if p.Version != Version1 || p.MinVersion < Version0 || p.MinVersion > p.Version ||
		(p.Direction != AToB && p.Direction != BToA) || len(p.AuthKey) == 0 {
		return nil, fmt.Errorf("%w: bad parameters", ErrState)
	}
	l := limits{}
	if p.SelfSession {
		l.maxJump = selfSessionJump
	}
	b, err := newBraid(p.AuthKey, p.Direction)
	if err != nil {
		return nil, err
	}
	return marshal(&pb.State{
		Negotiation: &pb.State_Negotiation{
			AuthKey: p.AuthKey, Direction: pb.Dir(p.Direction), MinVersion: pb.Ver(p.MinVersion), Limits: limitsToPB(l),
		},
		Inner: &pb.State_V1{V1: braidToPB(b)},
	}), nil
}

func marshal(s *pb.State) []byte {
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		panic("spqr: marshal state: " + err.Error()) // only on invalid UTF-8 strings, which the state has none of
	}
	return out
}

func unmarshal(state []byte) (*pb.State, error) {
	s := &pb.State{}
	if err := proto.Unmarshal(state, s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrState, err)
	}
	if s.Negotiation != nil && (len(s.Negotiation.AuthKey) == 0 ||
		(s.Negotiation.Direction != pb.Dir_DIR_A_TO_B && s.Negotiation.Direction != pb.Dir_DIR_B_TO_A) ||
		s.Negotiation.MinVersion < 0 || s.Negotiation.MinVersion > pb.Ver_VER_1) {
		return nil, fmt.Errorf("%w: negotiation", ErrState)
	}
	return s, nil
}

func stateVersion(s *pb.State) Version {
	if s.GetV1() != nil {
		return Version1
	}
	return Version0
}

// CurrentVersion returns the state's version and whether it is still
// negotiating (no message received yet), with its minimum.
func CurrentVersion(state []byte) (v Version, negotiating bool, minVersion Version, err error) {
	s, err := unmarshal(state)
	if err != nil {
		return 0, false, 0, err
	}
	if s.Negotiation == nil {
		return stateVersion(s), false, stateVersion(s), nil
	}
	return stateVersion(s), true, Version(s.Negotiation.MinVersion), nil
}

func chainFromNegotiation(n *pb.State_Negotiation) (*keyChain, error) {
	if n == nil || n.Limits == nil {
		return nil, fmt.Errorf("%w: no key chain", ErrState)
	}
	return newKeyChain(n.AuthKey, Direction(n.Direction), limits{maxJump: n.Limits.MaxJump, maxOOO: n.Limits.MaxOutOfOrder}), nil
}

func chainOf(s *pb.State) (*keyChain, error) {
	if s.Chain != nil {
		return chainFromPB(s.Chain)
	}
	return chainFromNegotiation(s.Negotiation)
}

// Send advances the state by one outgoing message. It returns the new
// state, the message for the pq_ratchet field and the message key to mix
// into the Double Ratchet's (nil when there is none: a version-0 state).
func Send(state []byte, rand io.Reader) (newState, msg, key []byte, err error) {
	s, err := unmarshal(state)
	if err != nil {
		return nil, nil, nil, err
	}
	if s.GetV1() == nil {
		return nil, nil, nil, nil
	}
	b, err := braidFromPB(s.GetV1())
	if err != nil {
		return nil, nil, nil, err
	}
	nb, m, ek, err := b.send(rand)
	if err != nil {
		return nil, nil, nil, err
	}
	var c *keyChain
	switch {
	case s.Chain != nil:
		if c, err = chainFromPB(s.Chain); err != nil {
			return nil, nil, nil, err
		}
	case s.Negotiation == nil:
		return nil, nil, nil, fmt.Errorf("%w: no key chain", ErrState)
	case s.Negotiation.MinVersion > pb.Ver_VER_NONE:
		if c, err = chainFromNegotiation(s.Negotiation); err != nil {
			return nil, nil, nil, err
		}
	}
	var index uint32
	out := &pb.State{Negotiation: s.Negotiation, Inner: &pb.State_V1{V1: braidToPB(nb)}}
	if c != nil {
		if ek != nil {
			if err := c.addEpoch(ek.epoch, ek.secret); err != nil {
				return nil, nil, nil, err
			}
		}
		if index, key, err = c.sendKey(m.epoch - 1); err != nil {
			return nil, nil, nil, err
		}
		out.Chain = chainToPB(c)
	} else if ek != nil {
		return nil, nil, nil, fmt.Errorf("%w: epoch secret without a key chain", ErrState)
	}
	return marshal(out), m.encode(index), key, nil
}

// Recv advances the state by one incoming pq_ratchet field. It returns the
// new state and the message key (nil when there is none). A message of a
// lower version than the state's ends the negotiation at that version if
// the minimum allows, and fails with ErrMinimumVersion otherwise; a message
// of an unknown version changes nothing.
func Recv(state, msg []byte) (newState, key []byte, err error) {
	pre, err := unmarshal(state)
	if err != nil {
		return nil, nil, err
	}
	v := Version0
	if len(msg) > 0 {
		if msg[0] > byte(Version1) {
			return state, nil, nil
		}
		v = Version(msg[0])
	}
	s := pre
	if v < stateVersion(pre) {
		if pre.Negotiation == nil {
			return nil, nil, ErrVersionMismatch
		}
		if v < Version(pre.Negotiation.MinVersion) {
			return nil, nil, ErrMinimumVersion
		}
		// Only version 0 is below version 1: SPQR is switched off.
		return nil, nil, nil
	}
	if s.GetV1() == nil {
		return nil, nil, nil
	}
	m, index, err := decodeMessage(msg)
	if err != nil {
		return nil, nil, err
	}
	b, err := braidFromPB(s.GetV1())
	if err != nil {
		return nil, nil, err
	}
	nb, ek, err := b.recv(m)
	if err != nil {
		return nil, nil, err
	}
	c, err := chainOf(s)
	if err != nil {
		return nil, nil, err
	}
	if ek != nil {
		if err := c.addEpoch(ek.epoch, ek.secret); err != nil {
			return nil, nil, err
		}
	}
	if m.epoch-1 != 0 || index != 0 {
		if key, err = c.recvKey(m.epoch-1, index); err != nil {
			return nil, nil, err
		}
	}
	return marshal(&pb.State{Inner: &pb.State_V1{V1: braidToPB(nb)}, Chain: chainToPB(c)}), key, nil
}
