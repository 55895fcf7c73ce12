package keylog

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"

	"sotto/transparency"
	"sotto/wire"
)

// testTree is a real key log in memory: a Merkle tree of bindings whose
// heads are signed with the log key. It answers the consistency requests
// of a Log (the other requests are not used by these tests).
type testTree struct {
	t      *testing.T
	key    ed25519.PrivateKey
	tree   transparency.MemoryTree
	leaves [][]byte
}

func newTestTree(t *testing.T) *testTree {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testTree{t: t, key: key}
}

func (tt *testTree) pub() ed25519.PublicKey { return tt.key.Public().(ed25519.PublicKey) }

// add appends a binding of key to user and returns its index.
func (tt *testTree) add(user string, key []byte) uint64 {
	tt.t.Helper()
	b := transparency.Binding{Kind: transparency.KindAdd, Username: user, IdentityKey: key, TimestampMS: 1}
	leaf, err := b.Encode()
	if err != nil {
		tt.t.Fatal(err)
	}
	if err := tt.tree.AppendLeaf(leaf); err != nil {
		tt.t.Fatal(err)
	}
	tt.leaves = append(tt.leaves, leaf)
	return uint64(len(tt.leaves) - 1)
}

func (tt *testTree) head() transparency.SignedHead {
	tt.t.Helper()
	root, err := tt.tree.Root(tt.tree.Size())
	if err != nil {
		tt.t.Fatal(err)
	}
	return transparency.SignHead(tt.key, tt.tree.Size(), root, 1)
}

// proof is the relay's proof of leaf i under the current head.
func (tt *testTree) proof(i uint64) *wire.TransparencyProof {
	tt.t.Helper()
	h := tt.head()
	incl, err := transparency.InclusionProof(&tt.tree, i, h.Size)
	if err != nil {
		tt.t.Fatal(err)
	}
	return &wire.TransparencyProof{SignedHead: h.Encode(), Leaf: tt.leaves[i], LeafIndex: i, Inclusion: transparency.EncodeProof(incl)}
}

func (tt *testTree) TransparencyHead(context.Context) (*wire.TransparencyHead, error) {
	return nil, errors.New("testTree: no head requests")
}

func (tt *testTree) TransparencyConsistency(_ context.Context, first, second uint64) (*wire.TransparencyConsistency, error) {
	p, err := transparency.ConsistencyProof(&tt.tree, first, second)
	if err != nil {
		return nil, err
	}
	return &wire.TransparencyConsistency{Proof: transparency.EncodeProof(p)}, nil
}

func (tt *testTree) TransparencyLeaves(context.Context, uint64, uint32) (*wire.TransparencyLeaves, error) {
	return nil, errors.New("testTree: no leaf requests")
}

func (tt *testTree) GetIdentity(context.Context, string) (*wire.IdentityResponse, error) {
	return nil, errors.New("testTree: no identity requests")
}

// TestCheckServedKey: a key proven in the log is accepted and moves the
// stored head forward; a key the proof does not bind, a head signed with
// another key, and a head of the same size with another root are refused
// with their alarms, and the stored head stays.
func TestCheckServedKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db, alarms := newTestLog(t, "alice")
	tt := newTestTree(t)
	if err := PinLogKey(ctx, db, tt.pub()); err != nil {
		t.Fatal(err)
	}
	bob := randomKey(t)
	tt.add("carol", randomKey(t))
	ib := tt.add("bob", bob)
	if err := l.CheckServedKey(ctx, tt, db, "bob", bob, nil, tt.proof(ib)); err != nil {
		t.Fatalf("proven key: %v", err)
	}
	h, err := l.Head(ctx)
	if err != nil || h == nil || h.Size != 2 {
		t.Fatalf("stored head %+v %v, want size 2", h, err)
	}
	if b, err := LoadBinding(ctx, db, "bob"); err != nil || b == nil || b.Index != ib {
		t.Fatalf("binding %+v %v", b, err)
	}
	// The log grows; the relay attaches no consistency proof, so the log
	// is asked for one.
	tt.add("dave", randomKey(t))
	if err := l.CheckServedKey(ctx, tt, db, "bob", bob, nil, tt.proof(ib)); err != nil {
		t.Fatalf("proven key under a larger head: %v", err)
	}
	if h, _ := l.Head(ctx); h == nil || h.Size != 3 {
		t.Fatalf("stored head %+v, want size 3", h)
	}

	for _, tc := range []struct {
		name  string
		proof func() *wire.TransparencyProof
		key   []byte
		want  error
		alarm AlarmKind
	}{
		{"another key", func() *wire.TransparencyProof { return tt.proof(ib) }, randomKey(t), ErrKeyNotInLog, AlarmUnprovenKey},
		{"no proof", func() *wire.TransparencyProof { return nil }, bob, ErrKeyNotInLog, AlarmUnprovenKey},
		{"head of another log key", func() *wire.TransparencyProof {
			other := newTestTree(t)
			other.add("carol", randomKey(t))
			return other.proof(other.add("bob", bob))
		}, bob, ErrKeyNotInLog, AlarmUnprovenKey},
		{"same size, another root", func() *wire.TransparencyProof {
			fork := &testTree{t: t, key: tt.key}
			fork.add("carol", randomKey(t))
			fork.add("bob", bob)
			fork.add("eve", randomKey(t))
			return fork.proof(1)
		}, bob, ErrFork, AlarmFork},
	} {
		err := l.CheckServedKey(ctx, tt, db, "bob", tc.key, nil, tc.proof())
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
		}
		if a := waitAlarm(t, alarms); a.Kind != tc.alarm {
			t.Fatalf("%s: alarm %s, want %s", tc.name, a.Kind, tc.alarm)
		}
		if h, _ := l.Head(ctx); h == nil || h.Size != 3 || h.Root != tt.head().Root {
			t.Fatalf("%s: stored head moved: %+v", tc.name, h)
		}
	}
	l.Flush(ctx)
	got, err := l.Alarms(ctx)
	if err != nil || len(got) != 4 {
		t.Fatalf("stored alarms %d %v, want 4", len(got), err)
	}
}

// TestCheckServedKeyOwnName: the account's own key needs no proof, and any
// other key served for its name is a foreign-key alarm.
func TestCheckServedKeyOwnName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, db, alarms := newTestLog(t, "alice")
	if err := l.CheckServedKey(ctx, nil, db, "alice", l.cfg.IdentityKey(), nil, nil); err != nil {
		t.Fatalf("own key: %v", err)
	}
	if err := l.CheckServedKey(ctx, nil, db, "alice", randomKey(t), nil, nil); !errors.Is(err, ErrKeyNotInLog) {
		t.Fatalf("another key for the own name: %v", err)
	}
	if a := waitAlarm(t, alarms); a.Kind != AlarmForeignKey {
		t.Fatalf("alarm %s", a.Kind)
	}
}

// TestAlarmsBounded: the first AlarmsKeepFirst and the newest
// AlarmsKeepNewest alarms are kept, the ones between counted.
func TestAlarmsBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _, alarms := newTestLog(t, "alice")
	const n = MaxStoredAlarms + 30
	for i := range n {
		l.Raise(&Alarm{Kind: AlarmBadLog, Detail: "test", LeafIndex: uint64(i)})
		<-alarms
		if i%50 == 0 {
			l.Flush(ctx)
		}
	}
	got, err := l.Alarms(ctx)
	if err != nil || len(got) != MaxStoredAlarms {
		t.Fatalf("%d alarms kept (%v), want %d", len(got), err, MaxStoredAlarms)
	}
	if got[0].LeafIndex != 0 || got[AlarmsKeepFirst-1].LeafIndex != AlarmsKeepFirst-1 || got[len(got)-1].LeafIndex != n-1 {
		t.Fatalf("kept %d, %d … %d", got[0].LeafIndex, got[AlarmsKeepFirst-1].LeafIndex, got[len(got)-1].LeafIndex)
	}
	if d, err := l.AlarmsDropped(ctx); err != nil || d != n-MaxStoredAlarms {
		t.Fatalf("dropped %d (%v), want %d", d, err, n-MaxStoredAlarms)
	}
}
