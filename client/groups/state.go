package groups

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"sotto/client/store"
	"sotto/mls"
)

// Tables of the device's store.
const (
	tblGroups      = "mls-groups"       // group id -> record (JSON)
	tblGroupBase   = "mls-group-base"   // group id -> base id (16) || the MLS state at the last rebase
	tblGroupDelta  = "mls-group-delta"  // group id -> base id (16) || delta from that base (stateDelta)
	tblSigKey      = "mls-self"         // sigKeyName -> this device's MLS signature key (Ed25519 seed)
	tblKeyPackages = "mls-key-packages" // KeyPackage hash -> kpRecord (JSON)
	sigKeyName     = "signature-key"
	identityName   = "identity" // this device's credential identity
)

// record is what the device keeps of one group.
type record struct {
	Name string `json:"name,omitempty"`
	// Base names the group's MLS state in tblGroupBase (with the delta
	// of tblGroupDelta made from it, when that names the same base).
	Base []byte `json:"base,omitempty"`
	// BaseEpoch is the epoch of that state: a commit (a new epoch)
	// writes a new base.
	BaseEpoch uint64 `json:"base_epoch,omitempty"`
	// State is the whole mls.Group.MarshalBinary of records written
	// before the state moved to tblGroupBase: read, and moved there at
	// the next save.
	State   []byte `json:"state,omitempty"`
	Removed bool   `json:"removed,omitempty"` // this device was removed
	// A commit sent to the relay whose answer this device has not
	// applied yet (a lost connection, a crash): the encoded
	// mls.PendingCommit and the GroupCommitRequest, resent to learn the
	// outcome (resolvePending).
	Pending        []byte `json:"pending,omitempty"`
	PendingRequest []byte `json:"pending_request,omitempty"`
	// Quarantine: a commit this device refused while the relay's group
	// moved on with it (recover.go).
	Quarantine *quarantine `json:"quarantine,omitempty"`

	// Not stored: the encoded record and state as loaded, so that save
	// writes only what changed.
	raw, base, state []byte
}

// load returns a group's record and state. The record, base and delta
// are three reads: a reader without m.mu (Info, List) that meets a
// save between them reads again.
func (m *Manager) load(ctx context.Context, group []byte) (*record, *mls.Group, error) {
	for attempt := 0; ; attempt++ {
		rec, g, err := m.loadOnce(ctx, group)
		if !errors.Is(err, errStateMoved) || attempt == 10 {
			return rec, g, err
		}
	}
}

// errStateMoved: the base or delta read is not the one the record read
// names (a save came between).
var errStateMoved = errors.New("groups: group state: the stored state is not the one the record names")

func (m *Manager) loadOnce(ctx context.Context, group []byte) (*record, *mls.Group, error) {
	b, err := m.kv.Get(ctx, tblGroups, group)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: %x", ErrNoGroup, group)
	}
	if err != nil {
		return nil, nil, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, nil, fmt.Errorf("groups: group record: %w", err)
	}
	rec.raw = b
	if rec.Removed {
		return &rec, nil, fmt.Errorf("%w: %x", ErrRemovedHere, group)
	}
	st := rec.State
	if rec.Base != nil {
		if st, err = m.loadState(ctx, group, &rec); err != nil {
			return nil, nil, err
		}
	}
	g, err := mls.UnmarshalGroup(st)
	if err != nil {
		return nil, nil, fmt.Errorf("groups: group state: %w", err)
	}
	rec.state = st
	return &rec, g, nil
}

// loadState reads the group's base state and applies its delta.
func (m *Manager) loadState(ctx context.Context, group []byte, rec *record) ([]byte, error) {
	b, err := m.kv.Get(ctx, tblGroupBase, group)
	if err != nil {
		return nil, fmt.Errorf("groups: group state: %w", err)
	}
	if len(b) < baseIDSize || !bytes.Equal(b[:baseIDSize], rec.Base) {
		return nil, errStateMoved
	}
	rec.base = b[baseIDSize:]
	d, err := m.kv.Get(ctx, tblGroupDelta, group)
	if errors.Is(err, store.ErrNotFound) {
		return rec.base, nil
	}
	if err != nil {
		return nil, err
	}
	if len(d) < baseIDSize || !bytes.Equal(d[:baseIDSize], rec.Base) {
		// Of a later base (a rebase deletes the delta of the one before
		// in its transaction).
		return nil, errStateMoved
	}
	return applyDelta(rec.base, d[baseIDSize:])
}

// save stores a group's record with g's state (g nil: the state as it
// is). The state is kept as a base, rewritten only at a new epoch (a
// commit, a join) or when the delta grows large, and a delta from it,
// rewritten per message:
// a message sent or received changes only the secret tree's ratchets,
// a few hundred bytes of a state that holds the whole ratchet tree
// (about 700 KB at 1,000 members). What changed is written in one
// transaction.
func (m *Manager) save(ctx context.Context, group []byte, rec *record, g *mls.Group) error {
	var st []byte
	if g != nil {
		var err error
		if st, err = g.MarshalBinary(); err != nil {
			return err
		}
	}
	var delta []byte
	rebase := false
	switch {
	case rec.Removed:
		// Its secrets go with it.
		rec.Base, rec.State, rec.base, rec.state = nil, nil, nil, nil
	case st == nil:
	case rec.Base != nil && rec.base != nil && g.Epoch() == rec.BaseEpoch:
		delta = makeDelta(rec.base, st)
		if len(delta) > maxDelta(len(st)) {
			rebase, delta = true, nil
		}
	default:
		rebase = true
	}
	if rebase {
		rec.Base, rec.BaseEpoch, rec.State, rec.base = randomID(), g.Epoch(), nil, st
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	err = m.kv.Update(ctx, func(tx *store.Tx) error {
		if !bytes.Equal(b, rec.raw) {
			if err := tx.Put(ctx, tblGroups, group, b); err != nil {
				return err
			}
		}
		switch {
		case rec.Removed:
			if err := tx.Delete(ctx, tblGroupBase, group); err != nil {
				return err
			}
			return tx.Delete(ctx, tblGroupDelta, group)
		case rebase:
			if err := tx.Put(ctx, tblGroupBase, group, append(slices.Clip(rec.Base), st...)); err != nil {
				return err
			}
			return tx.Delete(ctx, tblGroupDelta, group)
		case delta != nil:
			return tx.Put(ctx, tblGroupDelta, group, append(slices.Clip(rec.Base), delta...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	rec.raw = b
	if st != nil {
		rec.state = st
	}
	return nil
}

const baseIDSize = 16

// maxDelta is the largest delta kept for a state of n bytes: past it,
// the state is written whole as the new base.
func maxDelta(n int) int { return max(16<<10, n/8) }

// makeDelta encodes b as a change of base: the lengths of their common
// prefix and suffix (4 bytes each), then the bytes between.
func makeDelta(base, b []byte) []byte {
	p := 0
	for p < len(base) && p < len(b) && base[p] == b[p] {
		p++
	}
	s := 0
	for s < len(base)-p && s < len(b)-p && base[len(base)-1-s] == b[len(b)-1-s] {
		s++
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(p))
	out = binary.BigEndian.AppendUint32(out, uint32(s))
	return append(out, b[p:len(b)-s]...)
}

// applyDelta is the inverse of makeDelta.
func applyDelta(base, d []byte) ([]byte, error) {
	if len(d) < 8 {
		return nil, fmt.Errorf("groups: group state: a delta of %d bytes", len(d))
	}
	p, s := binary.BigEndian.Uint32(d), binary.BigEndian.Uint32(d[4:])
	if uint64(p)+uint64(s) > uint64(len(base)) {
		return nil, fmt.Errorf("groups: group state: a delta longer than its base")
	}
	out := make([]byte, 0, int(p)+len(d)-8+int(s))
	out = append(out, base[:p]...)
	out = append(out, d[8:]...)
	return append(out, base[len(base)-int(s):]...), nil
}

// signatureKey returns this device's MLS signature key (an Ed25519 seed)
// and its public half, making it on first use.
func (m *Manager) signatureKey(ctx context.Context) ([]byte, []byte, error) {
	seed, err := m.kv.Get(ctx, tblSigKey, []byte(sigKeyName))
	if errors.Is(err, store.ErrNotFound) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if seed, err = m.kv.Get(ctx, tblSigKey, []byte(sigKeyName)); errors.Is(err, store.ErrNotFound) {
			if seed, err = mls.GenerateSignatureKey(Suite); err == nil {
				err = m.kv.Put(ctx, tblSigKey, []byte(sigKeyName), seed)
			}
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, nil, fmt.Errorf("groups: stored signature key has %d bytes", len(seed))
	}
	return seed, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), nil
}

// ownIdentity is this device's credential identity, made once and kept
// (its binding signature is randomized, and a device's identity must stay
// the same bytes: an external rejoin finds its old leaf by them).
func (m *Manager) ownIdentity(ctx context.Context) (identity, seed []byte, err error) {
	seed, pub, err := m.signatureKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	identity, err = m.kv.Get(ctx, tblSigKey, []byte(identityName))
	if err == nil {
		if _, verr := verifyIdentity(m.self.OrgKey, mls.Credential{Type: mls.CredentialBasic, Identity: identity}, pub); verr == nil {
			return identity, seed, nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	if identity, err = newIdentity(&m.self, pub); err != nil {
		return nil, nil, err
	}
	return identity, seed, m.kv.Put(ctx, tblSigKey, []byte(identityName), identity)
}

func randomID() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return b
}

// ReadState returns a group's MLS state as a device's store holds it:
// for tools and tests that act as a client of their own (a hostile one
// that skips this package's checks).
func ReadState(ctx context.Context, kv KV, group []byte) (*mls.Group, error) {
	_, g, err := (&Manager{kv: kv}).load(ctx, group)
	return g, err
}
