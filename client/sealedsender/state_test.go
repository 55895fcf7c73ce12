package sealedsender

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"sotto/client/content"
	"sotto/signal/sealed"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, sealed.ProfileKeySize) }

// TestMergeKeyState: the merge rules of the profile key state.
func TestMergeKeyState(t *testing.T) {
	st := func(k byte, epoch uint64, revs map[string]Revocation) *KeyState {
		if revs == nil {
			revs = map[string]Revocation{}
		}
		return &KeyState{Key: key(k), Epoch: epoch, Revs: revs}
	}
	// A newer epoch wins over a lower key; its revocation comes along.
	revoked := st(9, 1, map[string]Revocation{"mallory": {1, true}})
	m, rotate, err := Merge(st(1, 0, nil), revoked)
	if err != nil || rotate || !Same(m, revoked) {
		t.Fatalf("newer state not adopted: %+v rotate %v %v", m, rotate, err)
	}
	// An older state (a sibling that has not heard) changes nothing.
	if m, rotate, _ = Merge(revoked, st(1, 0, nil)); rotate || !Same(m, revoked) {
		t.Fatalf("older state undid the revocation: %+v", m)
	}
	// Two revocations made at once on two devices (same epoch): the merged
	// state revokes both, under a new key of the next epoch, since the
	// winning key's device may have given it to the other one's contact.
	other := st(2, 1, map[string]Revocation{"eve": {1, true}})
	m, rotate, _ = Merge(revoked, other)
	if !rotate || m.Epoch != 2 || !m.Revoked("mallory") || !m.Revoked("eve") || bytes.Equal(m.Key, key(2)) || bytes.Equal(m.Key, key(9)) {
		t.Fatalf("concurrent revocations: %+v rotate %v", m, rotate)
	}
	// Both devices rotating at once settle without rotating again.
	a := &KeyState{Key: key(3), Epoch: 2, Revs: m.Revs}
	b := &KeyState{Key: key(4), Epoch: 2, Revs: m.Revs}
	if m, rotate, _ = Merge(b, a); rotate || !bytes.Equal(m.Key, key(3)) {
		t.Fatalf("equal revocations rotated again: %+v", m)
	}
	// A restoration of a higher epoch beats the revocation; no rotation.
	restored := st(9, 2, map[string]Revocation{"mallory": {2, false}})
	if m, rotate, _ = Merge(revoked, restored); rotate || m.Revoked("mallory") || m.RefusesMember() {
		t.Fatalf("restoration lost: %+v", m)
	}
	// A higher-epoch state that does not know a revocation (made at a
	// lower epoch, concurrently): rotation.
	if _, rotate, _ = Merge(revoked, st(5, 3, nil)); !rotate {
		t.Fatal("a newer key made without knowing of mallory's revocation was adopted as it is")
	}
	// Through the Content message and back.
	if got := StateOf(revoked.Key, revoked.Message()); !Same(got, revoked) {
		t.Fatalf("message round trip: %+v", got)
	}
}

// TestProfileKeyStateValidated: a ProfileKeyState that does not hold is
// refused by the Content decoder, and a link approval's by the parser.
func TestProfileKeyStateValidated(t *testing.T) {
	ct, err := content.NewProfileKeyStateOrder(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ct.ProfileKeyState = &content.ProfileKeyState{Epoch: 1, Revocations: []*content.Revocation{{User: "mallory", Epoch: 2, Revoked: true}}}
	if _, err := content.Encode(ct); !errors.Is(err, content.ErrInvalid) {
		t.Fatalf("a revocation of a later epoch than its state: %v", err)
	}
	for _, l := range []*LinkState{
		{ProfileKey: key(1)[:5], Epoch: 1},
		{ProfileKey: key(1), Epoch: 1, Revocations: []LinkRevocation{{User: " mallory", Epoch: 1, Revoked: true}}},
		{ProfileKey: key(1), Epoch: 1, Revocations: []LinkRevocation{{User: "mallory", Epoch: 0, Revoked: true}}},
	} {
		if l.Check() == nil {
			t.Fatalf("link state %+v accepted", l)
		}
	}
}
