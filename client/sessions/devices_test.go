package sessions

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"sotto/client/store"
	"sotto/wire"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	db, err := store.Create(context.Background(), filepath.Join(t.TempDir(), "s"), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestDeviceListKnownUnknownRemember: a list is unknown until saved (an
// empty saved list is known); Remember adds to a known list only, never
// this device; Forget makes it unknown again.
func TestDeviceListKnownUnknownRemember(t *testing.T) {
	ctx := context.Background()
	db := newStore(t)
	self := Self{User: "alice", Device: 1}
	if _, known, err := Devices(ctx, db, "alice"); err != nil || known {
		t.Fatalf("fresh list: known %v, %v", known, err)
	}
	if err := Remember(ctx, db, self, "alice", 2); err != nil {
		t.Fatal(err)
	}
	if _, known, _ := Devices(ctx, db, "alice"); known {
		t.Fatal("Remember made an unknown list known")
	}
	if err := Save(ctx, db, "alice", nil); err != nil {
		t.Fatal(err)
	}
	if ids, known, err := Devices(ctx, db, "alice"); err != nil || !known || len(ids) != 0 {
		t.Fatalf("empty list: %v %v %v", ids, known, err)
	}
	for _, id := range []uint32{1, 3, 2, 3} {
		if err := Remember(ctx, db, self, "alice", id); err != nil {
			t.Fatal(err)
		}
	}
	if ids, _, _ := Devices(ctx, db, "alice"); !slices.Equal(ids, []uint32{2, 3}) {
		t.Fatalf("remembered %v, want [2 3] (never this device, no repeats)", ids)
	}
	if err := Forget(ctx, db, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, known, _ := Devices(ctx, db, "alice"); known {
		t.Fatal("a forgotten list is still known")
	}
}

// TestDeviceListCorruptRow: a row that does not parse is an error, not an
// empty list (which would silently send to nobody).
func TestDeviceListCorruptRow(t *testing.T) {
	ctx := context.Background()
	db := newStore(t)
	if err := db.Put(ctx, Table, []byte("bob"), []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Devices(ctx, db, "bob"); err == nil {
		t.Fatal("a corrupt row parsed")
	}
}

// TestAfterStale: the relay's current list wins; without one, missing
// devices are added and extra ones removed; this device never appears.
func TestAfterStale(t *testing.T) {
	self := Self{User: "alice", Device: 1}
	cur := &wire.StaleDevices{Current: &wire.DeviceList{Devices: []*wire.DeviceInfo{{DeviceId: 1}, {DeviceId: 4}}}}
	if got := AfterStale(self, "alice", []uint32{2}, cur); !slices.Equal(got, []uint32{4}) {
		t.Fatalf("with the current list: %v", got)
	}
	st := &wire.StaleDevices{Missing: []uint32{5}, Extra: []uint32{2}, Mismatched: []uint32{3}}
	got := AfterStale(self, "bob", []uint32{2, 3}, st)
	slices.Sort(got)
	if !slices.Equal(got, []uint32{3, 5}) {
		t.Fatalf("without: %v", got)
	}
	if s := StaleSessions(st); !slices.Equal(s, []uint32{2, 3}) {
		t.Fatalf("sessions to drop: %v", s)
	}
	if got := FromRelay(self, "alice", cur.Current.Devices); !slices.Equal(got, []uint32{4}) {
		t.Fatalf("own list from the relay: %v", got)
	}
}
