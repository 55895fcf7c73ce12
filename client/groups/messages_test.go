package groups

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"testing"

	"sotto/client/store"
)

// Group messages kept by an older build (a table of their own) move to
// the message log in group order, once, and are not lost or doubled.
func TestMessagesMigrate(t *testing.T) {
	ctx := context.Background()
	db, err := store.Create(ctx, filepath.Join(t.TempDir(), "s"), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	group := []byte("0123456789abcdef")
	for _, seq := range []uint64{3, 1, 2} {
		b, _ := json.Marshal(Message{Group: group, Seq: seq, From: "alice", Text: string(rune('a' + seq))})
		key := binary.BigEndian.AppendUint64(append([]byte(nil), group...), seq)
		if err := db.Put(ctx, tblLegacyMessages, key, b); err != nil {
			t.Fatal(err)
		}
	}
	m := New(nil, db, Self{}, Options{})
	for range 2 {
		ms, err := m.Messages(ctx, group, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 3 || ms[0].Seq != 1 || ms[1].Seq != 2 || ms[2].Seq != 3 || ms[2].Text != "d" {
			t.Fatalf("%+v", ms)
		}
	}
	if es, err := db.List(ctx, tblLegacyMessages); err != nil || len(es) != 0 {
		t.Fatalf("left behind: %v %d", err, len(es))
	}
	// A second manager (a restart) finds them in the log only.
	ms, err := New(nil, db, Self{}, Options{}).Messages(ctx, group, 2)
	if err != nil || len(ms) != 2 || ms[1].Seq != 3 {
		t.Fatalf("%v %+v", err, ms)
	}
}
