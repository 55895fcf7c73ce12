package sealedsender

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"sotto/client/content"
	"sotto/client/store"
	"sotto/signal/sealed"
)

// The profile key state of an account, shared by all its devices: the
// profile key, its epoch, and the revocations of contacts' sealed access
// (revoke.go). Every change (a revocation, a restoration) moves to the
// next epoch. The state travels to the account's other devices with every
// message they are sent (Content.profile_key and profile_key_state,
// never in messages to contacts), at once with a DeviceOrder
// PROFILE_KEY_STATE when it changes, and to a device being linked in the
// link approval (LinkState).
//
// A device merges what it receives (Merge): per contact, the revocation
// entry of the higher epoch wins (a revocation over a restoration of the
// same epoch); the key of the higher epoch wins (of two keys of one epoch,
// the lower one, as before epochs). When the merged state revokes a
// contact that the winning key's device did not know to be revoked, that
// device may have given the key to the contact: the merging device then
// makes a new key of the next epoch and tells its siblings, so two
// revocations made at once on two devices both hold.
//
// Uploads carry the epoch, and the relay refuses a lower epoch than the
// one it holds, so a device that has not heard of a revocation yet cannot
// undo it by uploading the older key. The relay is not trusted with that:
// every device uploads its key, with the member-key refusal, on every
// connect, and a device that receives a sealed message from a revoked
// contact (which a relay that restored an older key, or ignores the
// refusal, lets through) uploads its key again at once and logs it.

var keyProfileEpoch = []byte("profile-key-epoch")

const revokedPrefix = "revoked/"

func revokedKey(user string) []byte { return []byte(revokedPrefix + user) }

// Revocation is one contact's entry: revoked (or restored) at Epoch.
type Revocation struct {
	Epoch   uint64
	Revoked bool
}

func (r Revocation) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 9), r.Epoch)
	if r.Revoked {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeRevocation(b []byte) (Revocation, error) {
	switch {
	case len(b) == 9 && b[8] <= 1:
		return Revocation{Epoch: binary.BigEndian.Uint64(b), Revoked: b[8] == 1}, nil
	case len(b) == 1 && b[0] == 1: // before epochs
		return Revocation{Epoch: 1, Revoked: true}, nil
	}
	return Revocation{}, fmt.Errorf("sealedsender: revocation record of %d bytes", len(b))
}

// KeyState is the profile key state (nil Key: none made yet).
type KeyState struct {
	Key   []byte
	Epoch uint64
	Revs  map[string]Revocation
}

// Revoked reports whether user's sealed access is revoked.
func (s *KeyState) Revoked(user string) bool { return s.Revs[user].Revoked }

// RefusesMember: the member access key is refused while a contact is
// revoked.
func (s *KeyState) RefusesMember() bool {
	for _, r := range s.Revs {
		if r.Revoked {
			return true
		}
	}
	return false
}

// RevokedUsers lists the revoked contacts, sorted.
func (s *KeyState) RevokedUsers() []string {
	var out []string
	for u, r := range s.Revs {
		if r.Revoked {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// Message is the state as it travels to the own other devices.
func (s *KeyState) Message() *content.ProfileKeyState {
	m := &content.ProfileKeyState{Epoch: s.Epoch}
	for _, u := range slices.Sorted(maps.Keys(s.Revs)) {
		r := s.Revs[u]
		m.Revocations = append(m.Revocations, &content.Revocation{User: u, Epoch: r.Epoch, Revoked: r.Revoked})
	}
	return m
}

// StateOf is the state a profile key and its ProfileKeyState (nil from
// an older client: epoch 0) describe.
func StateOf(pk []byte, m *content.ProfileKeyState) *KeyState {
	s := &KeyState{Key: pk, Revs: map[string]Revocation{}}
	if m == nil {
		return s
	}
	s.Epoch = m.Epoch
	for _, r := range m.Revocations {
		if u := strings.TrimSpace(r.User); u != "" {
			s.Revs[u] = Revocation{Epoch: r.Epoch, Revoked: r.Revoked}
		}
	}
	return s
}

// IsRevoked reports whether user's sealed access is revoked.
func IsRevoked(ctx context.Context, db KV, user string) (bool, error) {
	b, err := db.Get(ctx, Table, revokedKey(user))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r, err := decodeRevocation(b)
	return r.Revoked, err
}

// LoadState reads the profile key state.
func LoadState(ctx context.Context, db KV) (*KeyState, error) {
	s := &KeyState{Revs: map[string]Revocation{}}
	entries, err := db.List(ctx, Table)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		switch {
		case bytes.Equal(e.Key, RowProfileKey):
			s.Key = e.Value
		case bytes.Equal(e.Key, keyProfileEpoch):
			if len(e.Value) != 8 {
				return nil, fmt.Errorf("sealedsender: profile key epoch of %d bytes", len(e.Value))
			}
			s.Epoch = binary.BigEndian.Uint64(e.Value)
		case bytes.HasPrefix(e.Key, []byte(revokedPrefix)):
			r, err := decodeRevocation(e.Value)
			if err != nil {
				return nil, err
			}
			s.Revs[strings.TrimPrefix(string(e.Key), revokedPrefix)] = r
		}
	}
	return s, nil
}

// SaveState writes the profile key state (entries are never deleted: a
// restoration is an entry too).
func SaveState(ctx context.Context, tx KV, s *KeyState) error {
	if s.Key != nil {
		if err := tx.Put(ctx, Table, RowProfileKey, s.Key); err != nil {
			return err
		}
	}
	if err := tx.Put(ctx, Table, keyProfileEpoch, binary.BigEndian.AppendUint64(nil, s.Epoch)); err != nil {
		return err
	}
	for u, r := range s.Revs {
		if err := tx.Put(ctx, Table, revokedKey(u), r.encode()); err != nil {
			return err
		}
	}
	return nil
}

// Merge merges a sibling's state into the local one (see above). It
// reports whether the key was replaced by a new one made here (rotate),
// which the siblings must be told.
func Merge(local, remote *KeyState) (merged *KeyState, rotate bool, err error) {
	revs := maps.Clone(local.Revs)
	for u, r := range remote.Revs {
		if l, ok := revs[u]; !ok || r.Epoch > l.Epoch || r.Epoch == l.Epoch && r.Revoked && !l.Revoked {
			revs[u] = r
		}
	}
	win := local
	switch {
	case local.Key == nil, remote.Epoch > local.Epoch,
		remote.Epoch == local.Epoch && bytes.Compare(remote.Key, local.Key) < 0:
		win = remote
	}
	merged = &KeyState{Key: win.Key, Epoch: win.Epoch, Revs: revs}
	for u, r := range revs {
		if r.Revoked && !win.Revoked(u) {
			rotate = true
		}
	}
	if rotate {
		merged.Epoch = max(local.Epoch, remote.Epoch) + 1
		merged.Key = make([]byte, sealed.ProfileKeySize)
		if _, err := rand.Read(merged.Key); err != nil {
			return nil, false, fmt.Errorf("sealedsender: profile key: %w", err)
		}
	}
	return merged, rotate, nil
}

// Same reports whether a and b are the same state.
func Same(a, b *KeyState) bool {
	return bytes.Equal(a.Key, b.Key) && a.Epoch == b.Epoch && maps.Equal(a.Revs, b.Revs)
}

// SetRevoked revokes (or restores) user's sealed access in the store:
// the next epoch, and on a revocation (or a restoration when there is no
// key yet) a new profile key, shared with every contact again. It
// reports whether anything changed; the caller uploads the new access key
// and tells the account's other devices.
func SetRevoked(ctx context.Context, db Store, user string, revoked bool) (changed bool, err error) {
	err = db.Update(ctx, func(tx *store.Tx) error {
		st, err := LoadState(ctx, tx)
		if err != nil {
			return err
		}
		if st.Revoked(user) == revoked && (revoked || st.Key != nil) {
			return nil // already so (a repeated revocation rotates nothing)
		}
		changed = true
		st.Epoch++
		st.Revs[user] = Revocation{Epoch: st.Epoch, Revoked: revoked}
		if revoked || st.Key == nil {
			pk := make([]byte, sealed.ProfileKeySize)
			if _, err := rand.Read(pk); err != nil {
				return fmt.Errorf("sealedsender: profile key: %w", err)
			}
			st.Key = pk
			if err := resetSends(ctx, tx); err != nil {
				return err
			}
		} else if err := tx.Delete(ctx, Table, SentRow(user)); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return SaveState(ctx, tx, st)
	})
	return changed, err
}

// LinkState is the profile key state in a link approval.
type LinkState struct {
	ProfileKey  []byte           `json:"profile_key"`
	Epoch       uint64           `json:"epoch"`
	Revocations []LinkRevocation `json:"revocations,omitempty"`
}

// LinkRevocation is one revocation in a link approval.
type LinkRevocation struct {
	User    string `json:"user"`
	Epoch   uint64 `json:"epoch"`
	Revoked bool   `json:"revoked"`
}

// LinkStateOf is s for a link approval (nil when there is no key yet:
// the new device learns it from its siblings' first messages).
func LinkStateOf(s *KeyState) *LinkState {
	if s.Key == nil {
		return nil
	}
	l := &LinkState{ProfileKey: s.Key, Epoch: s.Epoch}
	for _, r := range s.Message().Revocations {
		l.Revocations = append(l.Revocations, LinkRevocation{User: r.User, Epoch: r.Epoch, Revoked: r.Revoked})
	}
	return l
}

// Check vets a link approval's state (nil is valid: none sent).
func (l *LinkState) Check() error {
	if l == nil {
		return nil
	}
	if len(l.ProfileKey) != sealed.ProfileKeySize || len(l.Revocations) > content.MaxRevocations {
		return errors.New("sealedsender: bad profile key state")
	}
	for _, r := range l.Revocations {
		if r.User == "" || len(r.User) > content.MaxUsername || strings.TrimSpace(r.User) != r.User || r.Epoch == 0 || r.Epoch > l.Epoch {
			return errors.New("sealedsender: bad revocation")
		}
	}
	return nil
}

// State is the KeyState of a link approval's state.
func (l *LinkState) State() *KeyState {
	s := &KeyState{Key: l.ProfileKey, Epoch: l.Epoch, Revs: map[string]Revocation{}}
	for _, r := range l.Revocations {
		s.Revs[r.User] = Revocation{Epoch: r.Epoch, Revoked: r.Revoked}
	}
	return s
}
