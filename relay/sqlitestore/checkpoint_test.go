package sqlitestore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sotto/relay"
)

// TestWALFrames checks the wal-index reading the background checkpointer
// decides by: commits raise mxFrame, a PASSIVE checkpoint raises
// nBackfill to it.
func TestWALFrames(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shm, err := os.Open(filepath.Join(dir, FileName+"-shm"))
	if err != nil {
		t.Fatal(err)
	}
	defer shm.Close()
	mx0, _, ok := walFrames(shm)
	if !ok {
		t.Fatal("wal-index unreadable")
	}
	var sender, bob relay.DeviceAddr
	sender.Account[0], sender.Device = 1, 1
	bob.Account[0], bob.Device = 2, 1
	for i := range 20 {
		ts := time.UnixMilli(1_700_000_000_000 + int64(i))
		sd := &relay.Send{Sender: sender, MessageID: []byte(fmt.Sprint("m", i)), Timestamp: ts, Envelopes: []relay.Envelope{{
			Recipient: bob, Sender: "alice", SenderDevice: 1, Timestamp: ts, Type: 1, Content: make([]byte, 300),
		}}}
		if _, err := s.Append(ctx, sd); err != nil {
			t.Fatal(err)
		}
	}
	mx1, done1, _ := walFrames(shm)
	if mx1 < mx0+20 {
		t.Fatalf("mxFrame %d after 20 commits, %d before", mx1, mx0)
	}
	if done1 >= mx1 {
		t.Fatalf("nBackfill %d already at mxFrame %d before any checkpoint", done1, mx1)
	}
	if _, err := s.ck.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		t.Fatal(err)
	}
	mx2, done2, _ := walFrames(shm)
	if mx2 != mx1 || done2 != mx2 {
		t.Fatalf("after a checkpoint: mxFrame %d (was %d), nBackfill %d", mx2, mx1, done2)
	}
}
