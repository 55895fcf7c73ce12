package client

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
	"sotto/client/transport"
	"sotto/signal/sealed"
	"sotto/wire"
)

// The profile key state of an account, shared by all its devices: the
// profile key, its epoch, and the revocations of contacts' sealed access
// (revoke.go). Every change (a revocation, a restoration) moves to the
// next epoch. The state travels to the account's other devices with every
// message they are sent (Content.profile_key and profile_key_state,
// never in messages to contacts), at once with a DeviceOrder
// PROFILE_KEY_STATE when it changes, and to a device being linked in the
// link approval (enroll.go).
//
// A device merges what it receives (mergeKeyState): per contact, the
// revocation entry of the higher epoch wins (a revocation over a
// restoration of the same epoch); the key of the higher epoch wins (of two
// keys of one epoch, the lower one, as before epochs). When the merged
// state revokes a contact that the winning key's device did not know to be
// revoked, that device may have given the key to the contact: the merging
// device then makes a new key of the next epoch and tells its siblings, so
// two revocations made at once on two devices both hold.
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

// revocation is one contact's entry: revoked (or restored) at epoch.
type revocation struct {
	epoch   uint64
	revoked bool
}

func (r revocation) encode() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 9), r.epoch)
	if r.revoked {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeRevocation(b []byte) (revocation, error) {
	switch {
	case len(b) == 9 && b[8] <= 1:
		return revocation{epoch: binary.BigEndian.Uint64(b), revoked: b[8] == 1}, nil
	case len(b) == 1 && b[0] == 1: // before epochs
		return revocation{epoch: 1, revoked: true}, nil
	}
	return revocation{}, fmt.Errorf("client: revocation record of %d bytes", len(b))
}

// keyState is the profile key state (nil key: none made yet).
type keyState struct {
	key   []byte
	epoch uint64
	revs  map[string]revocation
}

func (s *keyState) revoked(user string) bool { return s.revs[user].revoked }

// refusesMember: the member access key is refused while a contact is
// revoked.
func (s *keyState) refusesMember() bool {
	for _, r := range s.revs {
		if r.revoked {
			return true
		}
	}
	return false
}

func (s *keyState) revokedUsers() []string {
	var out []string
	for u, r := range s.revs {
		if r.revoked {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out
}

// message is the state as it travels to the own other devices.
func (s *keyState) message() *content.ProfileKeyState {
	m := &content.ProfileKeyState{Epoch: s.epoch}
	for _, u := range slices.Sorted(maps.Keys(s.revs)) {
		r := s.revs[u]
		m.Revocations = append(m.Revocations, &content.Revocation{User: u, Epoch: r.epoch, Revoked: r.revoked})
	}
	return m
}

// keyStateOf is the state a profile key and its ProfileKeyState (nil from
// an older client: epoch 0) describe.
func keyStateOf(pk []byte, m *content.ProfileKeyState) *keyState {
	s := &keyState{key: pk, revs: map[string]revocation{}}
	if m == nil {
		return s
	}
	s.epoch = m.Epoch
	for _, r := range m.Revocations {
		if u := normalize(r.User); u != "" {
			s.revs[u] = revocation{epoch: r.Epoch, revoked: r.Revoked}
		}
	}
	return s
}

func isRevoked(ctx context.Context, db kv, user string) (bool, error) {
	b, err := db.Get(ctx, tblSealed, revokedKey(user))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	r, err := decodeRevocation(b)
	return r.revoked, err
}

// loadKeyState reads the profile key state.
func loadKeyState(ctx context.Context, db kv) (*keyState, error) {
	s := &keyState{revs: map[string]revocation{}}
	entries, err := db.List(ctx, tblSealed)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		switch {
		case bytes.Equal(e.Key, keyProfile):
			s.key = e.Value
		case bytes.Equal(e.Key, keyProfileEpoch):
			if len(e.Value) != 8 {
				return nil, fmt.Errorf("client: profile key epoch of %d bytes", len(e.Value))
			}
			s.epoch = binary.BigEndian.Uint64(e.Value)
		case bytes.HasPrefix(e.Key, []byte(revokedPrefix)):
			r, err := decodeRevocation(e.Value)
			if err != nil {
				return nil, err
			}
			s.revs[strings.TrimPrefix(string(e.Key), revokedPrefix)] = r
		}
	}
	return s, nil
}

// saveKeyState writes the profile key state (entries are never deleted: a
// restoration is an entry too).
func saveKeyState(ctx context.Context, tx kv, s *keyState) error {
	if s.key != nil {
		if err := tx.Put(ctx, tblSealed, keyProfile, s.key); err != nil {
			return err
		}
	}
	if err := tx.Put(ctx, tblSealed, keyProfileEpoch, binary.BigEndian.AppendUint64(nil, s.epoch)); err != nil {
		return err
	}
	for u, r := range s.revs {
		if err := tx.Put(ctx, tblSealed, revokedKey(u), r.encode()); err != nil {
			return err
		}
	}
	return nil
}

// mergeKeyState merges a sibling's state into the local one (see above).
// It reports whether the key was replaced by a new one made here (rotate),
// which the siblings must be told.
func mergeKeyState(local, remote *keyState) (merged *keyState, rotate bool, err error) {
	revs := maps.Clone(local.revs)
	for u, r := range remote.revs {
		if l, ok := revs[u]; !ok || r.epoch > l.epoch || r.epoch == l.epoch && r.revoked && !l.revoked {
			revs[u] = r
		}
	}
	win := local
	switch {
	case local.key == nil, remote.epoch > local.epoch,
		remote.epoch == local.epoch && bytes.Compare(remote.key, local.key) < 0:
		win = remote
	}
	merged = &keyState{key: win.key, epoch: win.epoch, revs: revs}
	for u, r := range revs {
		if r.revoked && !win.revoked(u) {
			rotate = true
		}
	}
	if rotate {
		merged.epoch = max(local.epoch, remote.epoch) + 1
		merged.key = make([]byte, sealed.ProfileKeySize)
		if _, err := rand.Read(merged.key); err != nil {
			return nil, false, fmt.Errorf("client: profile key: %w", err)
		}
	}
	return merged, rotate, nil
}

// sameKeyState reports whether a and b are the same state.
func sameKeyState(a, b *keyState) bool {
	return bytes.Equal(a.key, b.key) && a.epoch == b.epoch && maps.Equal(a.revs, b.revs)
}

// learnOwnKeyState merges the state an own device sent (pk with
// ct.profile_key_state) inside the receive transaction; r says what to do
// after commit.
func (c *Client) learnOwnKeyState(ctx context.Context, tx kv, pk []byte, ct *content.Content, r *received) error {
	local, err := loadKeyState(ctx, tx)
	if err != nil {
		return err
	}
	merged, rotate, err := mergeKeyState(local, keyStateOf(pk, ct.GetProfileKeyState()))
	if err != nil || sameKeyState(local, merged) {
		return err
	}
	if err := saveKeyState(ctx, tx, merged); err != nil {
		return err
	}
	if !bytes.Equal(local.key, merged.key) {
		// A new key is shared with every contact again.
		if err := resetProfileKeySends(ctx, tx); err != nil {
			return err
		}
	}
	r.keyState = true
	r.keyStateRotated = r.keyStateRotated || rotate
	return nil
}

// keyStateChanged acts, after commit, on a state merged from a sibling:
// the access key is uploaded at once (not on the next send), and a key
// made here is announced to the siblings.
func (c *Client) keyStateChanged(ctx context.Context, conn *transport.Conn, rotated bool) {
	if err := c.uploadOwnAccessKey(ctx, conn); err != nil && ctx.Err() == nil {
		c.log.Warn("access key not uploaded after an own device's profile key change", "err", err)
	}
	if !rotated {
		return
	}
	if err := c.tellSiblings(ctx); err != nil && ctx.Err() == nil {
		c.log.Warn("the other devices are not told of the new profile key yet", "err", err)
	}
}

// tellSiblings sends the profile key state to the account's other devices
// (attachProfileKey attaches it). No other device is no error.
func (c *Client) tellSiblings(ctx context.Context) error {
	ct, err := content.NewProfileKeyStateOrder(c.opts.Now())
	if err != nil {
		return err
	}
	if _, err := c.sendContent(ctx, c.acct.Username, ct, ct.Id); err != nil && !errors.Is(err, ErrNoDevices) {
		return err
	}
	return nil
}

// sealedFromRevoked: a sealed message came from a revoked contact, which
// an honest relay refuses. The relay holds an older key, or no refusal of
// the member key: the access key is uploaded again at once.
func (c *Client) sealedFromRevoked(ctx context.Context, conn *transport.Conn, user string) {
	c.log.Warn("a sealed message came from a contact whose sealed access is revoked: the relay did not refuse it; uploading the access key again", "from", user)
	if err := c.uploadOwnAccessKey(ctx, conn); err != nil && ctx.Err() == nil {
		c.log.Warn("access key not uploaded", "err", err)
	}
}

// accessKeyMark is what keyAccessSet records of an upload: the access key,
// whether the member key was refused with it, and the epoch.
func accessKeyMark(ak []byte, refuseMember bool, epoch uint64) []byte {
	b := append([]byte(nil), ak...)
	if refuseMember {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return binary.BigEndian.AppendUint64(b, epoch)
}

// ErrStaleProfileKey: the relay holds an access key of a newer epoch than
// this device's profile key; an own device changed it and this device has
// not heard of it yet (it will, with that device's next message to it).
var ErrStaleProfileKey = errors.New("client: the relay holds a newer profile key's access key; this device has not heard of it yet")

// uploadAccessKey sets the access key of state s at the relay, with its
// epoch and its refusal of the member key, and records the upload.
func (c *Client) uploadAccessKey(ctx context.Context, conn *transport.Conn, s *keyState) error {
	ak, err := sealed.DeriveAccessKey(s.key)
	if err != nil {
		return err
	}
	refuse := s.refusesMember()
	if err := conn.SetAccessKeyEpoch(ctx, ak, refuse, s.epoch); err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.Code == wire.ErrorCode_CONFLICT {
			return fmt.Errorf("%w (epoch %d): %w", ErrStaleProfileKey, s.epoch, err)
		}
		return fmt.Errorf("client: upload access key: %w", err)
	}
	return c.db.Put(ctx, tblSealed, keyAccessSet, accessKeyMark(ak, refuse, s.epoch))
}

// linkKeyState is the profile key state in a link approval.
type linkKeyState struct {
	ProfileKey  []byte           `json:"profile_key"`
	Epoch       uint64           `json:"epoch"`
	Revocations []linkRevocation `json:"revocations,omitempty"`
}

type linkRevocation struct {
	User    string `json:"user"`
	Epoch   uint64 `json:"epoch"`
	Revoked bool   `json:"revoked"`
}

// linkKeyStateOf is s for a link approval (nil when there is no key yet:
// the new device learns it from its siblings' first messages).
func linkKeyStateOf(s *keyState) *linkKeyState {
	if s.key == nil {
		return nil
	}
	l := &linkKeyState{ProfileKey: s.key, Epoch: s.epoch}
	for _, r := range s.message().Revocations {
		l.Revocations = append(l.Revocations, linkRevocation{User: r.User, Epoch: r.Epoch, Revoked: r.Revoked})
	}
	return l
}

// check vets a link approval's state (nil is valid: none sent).
func (l *linkKeyState) check() error {
	if l == nil {
		return nil
	}
	if len(l.ProfileKey) != sealed.ProfileKeySize || len(l.Revocations) > content.MaxRevocations {
		return errors.New("client: bad profile key state")
	}
	for _, r := range l.Revocations {
		if r.User == "" || len(r.User) > content.MaxUsername || normalize(r.User) != r.User || r.Epoch == 0 || r.Epoch > l.Epoch {
			return errors.New("client: bad revocation")
		}
	}
	return nil
}

func (l *linkKeyState) state() *keyState {
	s := &keyState{key: l.ProfileKey, epoch: l.Epoch, revs: map[string]revocation{}}
	for _, r := range l.Revocations {
		s.revs[r.User] = revocation{epoch: r.Epoch, revoked: r.Revoked}
	}
	return s
}
