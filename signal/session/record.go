package session

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"sotto/signal/keys"
)

// Limits, as libsignal 0.90 sets them.
const (
	maxForwardJumps   = 25000 // largest counter jump accepted on one chain
	maxMessageKeys    = 2000  // skipped message keys kept per receiver chain
	maxReceiverChains = 5     // receiver chains kept per state
	maxArchivedStates = 40    // previous states kept per record
	currentVersion    = 4     // session and message version
	maxUnackedAgeSec  = 30 * 24 * 60 * 60
)

// skippedKey is the seed of a message key skipped on a receiver chain.
type skippedKey struct {
	index uint32
	seed  [32]byte
}

type chain struct {
	ratchetKey  keys.PublicKey
	ratchetPriv keys.PrivateKey // sender chain only
	hasPriv     bool
	key         [32]byte
	index       uint32
	skipped     []skippedKey // newest first
}

type pendingPreKey struct {
	hasPreKeyID    bool
	preKeyID       uint32
	signedPreKeyID uint32
	baseKey        keys.PublicKey
	timestampSec   uint64
}

type pendingKyber struct {
	preKeyID   uint32
	ciphertext []byte
}

// state is one session state (libsignal's SessionStructure).
type state struct {
	version         uint32
	localIdentity   keys.PublicKey
	remoteIdentity  keys.PublicKey
	rootKey         [32]byte
	previousCounter uint32
	sender          *chain
	receivers       []*chain
	pending         *pendingPreKey
	pendingKyber    *pendingKyber
	remoteRegID     uint32
	localRegID      uint32
	aliceBaseKey    keys.PublicKey
	// pqState is the post-quantum ratchet (SPQR) state, kept opaque; empty
	// while this package speaks the classical ratchet only.
	pqState []byte
}

// Record is a session record: the current state plus up to 40 previous
// ones, so that late messages of an older session and simultaneous
// initiation still decrypt. Its serialization is libsignal's RecordStructure
// protobuf: each state carries its session version, and fields added later
// (such as the post-quantum ratchet state, field 15) extend it compatibly.
type Record struct {
	current  *state
	previous []*state // newest first
}

// NewRecord returns an empty record.
func NewRecord() *Record { return &Record{} }

// HasCurrentState reports whether the record has a usable current state.
func (r *Record) HasCurrentState() bool {
	return r != nil && r.current != nil && r.current.sender != nil
}

// RemoteRegistrationID returns the current state's remote registration id.
func (r *Record) RemoteRegistrationID() (uint32, bool) {
	if r == nil || r.current == nil {
		return 0, false
	}
	return r.current.remoteRegID, true
}

// RemoteIdentityKey returns the current state's serialized remote identity key.
func (r *Record) RemoteIdentityKey() ([]byte, bool) {
	if r == nil || r.current == nil {
		return nil, false
	}
	return r.current.remoteIdentity.Serialize(), true
}

// ArchiveCurrentState moves the current state to the previous states, so the
// next message starts a fresh session.
func (r *Record) ArchiveCurrentState() {
	if r.current != nil {
		r.archive()
	}
}

func (r *Record) archive() {
	n := min(len(r.previous), maxArchivedStates-1)
	prev := make([]*state, 0, n+1)
	prev = append(prev, r.current)
	r.previous = append(prev, r.previous[:n]...)
	r.current = nil
}

// promote makes s the current state, archiving the old one.
func (r *Record) promote(s *state) {
	if r.current != nil {
		r.archive()
	}
	r.current = s
}

// promoteMatching finds the state begun with aliceBaseKey and makes it
// current; it reports whether one was found.
func (r *Record) promoteMatching(version uint32, baseKey keys.PublicKey) bool {
	if r.current != nil && r.current.version == version && r.current.aliceBaseKey.Equal(baseKey) {
		return true
	}
	for i, p := range r.previous {
		if p.version == version && p.aliceBaseKey.Equal(baseKey) {
			r.promoteOld(i, p.clone())
			return true
		}
	}
	return false
}

// promoteOld makes previous state i (replaced by s, a modified copy)
// current. The previous slice may be shared with other records, so it is
// rebuilt, not edited in place.
func (r *Record) promoteOld(i int, s *state) {
	prev := make([]*state, 0, len(r.previous))
	prev = append(prev, r.previous[:i]...)
	r.previous = append(prev, r.previous[i+1:]...)
	r.promote(s)
}

// Clone returns a copy that can be modified without affecting r. Archived
// states are never modified in place (they are copied before any use), so
// the copy shares them.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	c := &Record{}
	if r.current != nil {
		c.current = r.current.clone()
	}
	if len(r.previous) > 0 {
		c.previous = append([]*state(nil), r.previous...)
	}
	return c
}

func (c *chain) clone() *chain {
	if c == nil {
		return nil
	}
	d := *c
	if len(c.skipped) > 0 {
		d.skipped = append([]skippedKey(nil), c.skipped...)
	}
	return &d
}

func (s *state) clone() *state {
	d := *s
	d.sender = s.sender.clone()
	if len(s.receivers) > 0 {
		d.receivers = make([]*chain, len(s.receivers))
		for i, c := range s.receivers {
			d.receivers[i] = c.clone()
		}
	}
	if s.pending != nil {
		p := *s.pending
		d.pending = &p
	}
	if s.pendingKyber != nil {
		k := *s.pendingKyber
		k.ciphertext = append([]byte(nil), k.ciphertext...)
		d.pendingKyber = &k
	}
	d.pqState = append([]byte(nil), s.pqState...)
	return &d
}

func (s *state) receiverChain(k keys.PublicKey) *chain {
	for _, c := range s.receivers {
		if c.ratchetKey.Equal(k) {
			return c
		}
	}
	return nil
}

func (s *state) addReceiverChain(k keys.PublicKey, key [32]byte) {
	s.receivers = append(s.receivers, &chain{ratchetKey: k, key: key})
	if len(s.receivers) > maxReceiverChains {
		s.receivers = append(s.receivers[:0], s.receivers[1:]...)
	}
}

// takeSkipped removes and returns the skipped key seed for index.
func (c *chain) takeSkipped(index uint32) ([32]byte, bool) {
	for i, k := range c.skipped {
		if k.index == index {
			c.skipped = append(c.skipped[:i], c.skipped[i+1:]...)
			return k.seed, true
		}
	}
	return [32]byte{}, false
}

// addSkippedBatch adds seeds in increasing index order; the list stays
// newest first and bounded, dropping the oldest.
func (c *chain) addSkippedBatch(fresh []skippedKey) {
	n := len(fresh) + len(c.skipped)
	if n > maxMessageKeys {
		n = maxMessageKeys
	}
	out := make([]skippedKey, 0, n)
	for i := len(fresh) - 1; i >= 0 && len(out) < n; i-- {
		out = append(out, fresh[i])
	}
	for _, k := range c.skipped {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	c.skipped = out
}

// Serialize encodes the record (libsignal's RecordStructure layout).
func (r *Record) Serialize() []byte {
	var b []byte
	if r.current != nil {
		b = appendBytesField(b, 1, r.current.serialize())
	}
	for _, p := range r.previous {
		b = appendBytesField(b, 2, p.serialize())
	}
	return b
}

// ParseRecord decodes Record.Serialize's output.
func ParseRecord(b []byte) (*Record, error) {
	r := &Record{}
	err := pbWalk(b, func(f pbField) error {
		if f.num != 1 && f.num != 2 {
			return nil
		}
		v, err := wantBytes(f)
		if err != nil {
			return err
		}
		s, err := parseState(v)
		if err != nil {
			return err
		}
		if f.num == 1 {
			r.current = s
		} else if len(r.previous) < maxArchivedStates {
			r.previous = append(r.previous, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	return r, nil
}

func (c *chain) serialize() []byte {
	var b []byte
	b = appendBytesField(b, 1, c.ratchetKey.Serialize())
	if c.hasPriv {
		b = appendBytesField(b, 2, c.ratchetPriv.Bytes())
	}
	var ck []byte
	ck = appendVarintField(ck, 1, uint64(c.index))
	ck = appendBytesField(ck, 2, c.key[:])
	b = appendBytesField(b, 3, ck)
	for _, k := range c.skipped {
		var mk []byte
		mk = appendVarintField(mk, 1, uint64(k.index))
		mk = appendBytesField(mk, 5, k.seed[:])
		b = appendBytesField(b, 4, mk)
	}
	return b
}

func (s *state) serialize() []byte {
	var b []byte
	b = appendVarintField(b, 1, uint64(s.version))
	b = appendBytesField(b, 2, s.localIdentity.Serialize())
	b = appendBytesField(b, 3, s.remoteIdentity.Serialize())
	b = appendBytesField(b, 4, s.rootKey[:])
	b = appendVarintField(b, 5, uint64(s.previousCounter))
	if s.sender != nil {
		b = appendBytesField(b, 6, s.sender.serialize())
	}
	for _, c := range s.receivers {
		b = appendBytesField(b, 7, c.serialize())
	}
	if p := s.pending; p != nil {
		var pb []byte
		if p.hasPreKeyID {
			pb = appendVarintField(pb, 1, uint64(p.preKeyID))
		}
		pb = appendBytesField(pb, 2, p.baseKey.Serialize())
		pb = appendVarintField(pb, 3, uint64(int64(int32(p.signedPreKeyID))))
		pb = appendVarintField(pb, 4, p.timestampSec)
		b = appendBytesField(b, 9, pb)
	}
	b = appendVarintField(b, 10, uint64(s.remoteRegID))
	b = appendVarintField(b, 11, uint64(s.localRegID))
	b = appendBytesField(b, 13, s.aliceBaseKey.Serialize())
	if k := s.pendingKyber; k != nil {
		var kb []byte
		kb = appendVarintField(kb, 1, uint64(k.preKeyID))
		kb = appendBytesField(kb, 2, k.ciphertext)
		b = appendBytesField(b, 14, kb)
	}
	if len(s.pqState) > 0 {
		b = appendBytesField(b, 15, s.pqState)
	}
	return b
}

func parseKey32(v []byte, dst *[32]byte) error {
	if len(v) != 32 {
		return fmt.Errorf("key length %d", len(v))
	}
	copy(dst[:], v)
	return nil
}

func parseChain(b []byte) (*chain, error) {
	c := &chain{}
	var haveKey bool
	err := pbWalk(b, func(f pbField) error {
		switch f.num {
		case 1, 2, 3, 4:
			if f.typ != protowire.BytesType {
				return fmt.Errorf("chain field %d: not bytes", f.num)
			}
		default:
			return nil
		}
		switch f.num {
		case 1:
			k, err := keys.ParsePublicKey(f.bytes)
			if err != nil {
				return err
			}
			c.ratchetKey = k
		case 2:
			p, err := keys.ParsePrivateKey(f.bytes)
			if err != nil {
				return err
			}
			c.ratchetPriv, c.hasPriv = p, true
		case 3:
			return pbWalk(f.bytes, func(g pbField) error {
				var err error
				switch g.num {
				case 1:
					c.index, err = u32(g)
				case 2:
					var v []byte
					if v, err = wantBytes(g); err == nil {
						err = parseKey32(v, &c.key)
						haveKey = true
					}
				}
				return err
			})
		case 4:
			var k skippedKey
			var haveSeed bool
			err := pbWalk(f.bytes, func(g pbField) error {
				var err error
				switch g.num {
				case 1:
					k.index, err = u32(g)
				case 5:
					var v []byte
					if v, err = wantBytes(g); err == nil {
						err = parseKey32(v, &k.seed)
						haveSeed = true
					}
				}
				return err
			})
			if err != nil {
				return err
			}
			// Keys stored already derived (no seed) are from pre-SPQR
			// libsignal records; this package does not keep them.
			if haveSeed && len(c.skipped) < maxMessageKeys {
				c.skipped = append(c.skipped, k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveKey {
		return nil, fmt.Errorf("chain without key")
	}
	return c, nil
}

func parseState(b []byte) (*state, error) {
	s := &state{}
	err := pbWalk(b, func(f pbField) error {
		var err error
		var v []byte
		switch f.num {
		case 1:
			s.version, err = u32(f)
		case 2, 3, 13:
			if v, err = wantBytes(f); err != nil {
				return err
			}
			var k keys.PublicKey
			if k, err = keys.ParsePublicKey(v); err != nil {
				return err
			}
			switch f.num {
			case 2:
				s.localIdentity = k
			case 3:
				s.remoteIdentity = k
			default:
				s.aliceBaseKey = k
			}
		case 4:
			if v, err = wantBytes(f); err == nil {
				err = parseKey32(v, &s.rootKey)
			}
		case 5:
			s.previousCounter, err = u32(f)
		case 6, 7:
			if v, err = wantBytes(f); err != nil {
				return err
			}
			var c *chain
			if c, err = parseChain(v); err != nil {
				return err
			}
			if f.num == 6 {
				if !c.hasPriv {
					return fmt.Errorf("sender chain without private key")
				}
				s.sender = c
			} else if len(s.receivers) < maxReceiverChains {
				s.receivers = append(s.receivers, c)
			}
		case 9:
			if v, err = wantBytes(f); err != nil {
				return err
			}
			p := &pendingPreKey{}
			err = pbWalk(v, func(g pbField) error {
				var err error
				switch g.num {
				case 1:
					p.preKeyID, err = u32(g)
					p.hasPreKeyID = true
				case 2:
					var kb []byte
					if kb, err = wantBytes(g); err == nil {
						p.baseKey, err = keys.ParsePublicKey(kb)
					}
				case 3:
					p.signedPreKeyID = uint32(g.varint)
				case 4:
					p.timestampSec = g.varint
				}
				return err
			})
			s.pending = p
		case 10:
			s.remoteRegID, err = u32(f)
		case 11:
			s.localRegID, err = u32(f)
		case 14:
			if v, err = wantBytes(f); err != nil {
				return err
			}
			k := &pendingKyber{}
			err = pbWalk(v, func(g pbField) error {
				var err error
				switch g.num {
				case 1:
					k.preKeyID, err = u32(g)
				case 2:
					var cb []byte
					if cb, err = wantBytes(g); err == nil {
						k.ciphertext = append([]byte(nil), cb...)
					}
				}
				return err
			})
			s.pendingKyber = k
		case 15:
			if v, err = wantBytes(f); err == nil {
				s.pqState = append([]byte(nil), v...)
			}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.version != currentVersion {
		return nil, fmt.Errorf("unsupported session version %d", s.version)
	}
	return s, nil
}
