package groups

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"sotto/client/store"
	"sotto/mls"
)

// Tables of the device's store.
const (
	tblGroups      = "mls-groups"       // group id -> record (JSON)
	tblSigKey      = "mls-self"         // sigKeyName -> this device's MLS signature key (Ed25519 seed)
	tblKeyPackages = "mls-key-packages" // KeyPackage hash -> kpRecord (JSON)
	sigKeyName     = "signature-key"
	identityName   = "identity" // this device's credential identity
)

// record is what the device keeps of one group.
type record struct {
	Name    string `json:"name,omitempty"`
	State   []byte `json:"state"`             // mls.Group.MarshalBinary
	Removed bool   `json:"removed,omitempty"` // this device was removed
	// A commit sent to the relay whose answer this device has not
	// applied yet (a lost connection, a crash): the encoded
	// mls.PendingCommit and the GroupCommitRequest, resent to learn the
	// outcome (resolvePending).
	Pending        []byte `json:"pending,omitempty"`
	PendingRequest []byte `json:"pending_request,omitempty"`
}

// load returns a group's record and state.
func (m *Manager) load(ctx context.Context, group []byte) (*record, *mls.Group, error) {
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
	if rec.Removed {
		return &rec, nil, fmt.Errorf("%w: %x", ErrRemovedHere, group)
	}
	g, err := mls.UnmarshalGroup(rec.State)
	if err != nil {
		return nil, nil, fmt.Errorf("groups: group state: %w", err)
	}
	return &rec, g, nil
}

// save stores a group's record with g's state.
func (m *Manager) save(ctx context.Context, group []byte, rec *record, g *mls.Group) error {
	if g != nil {
		st, err := g.MarshalBinary()
		if err != nil {
			return err
		}
		rec.State = st
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return m.kv.Put(ctx, tblGroups, group, b)
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
