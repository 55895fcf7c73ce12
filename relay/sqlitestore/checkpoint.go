package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/binary"
	"os"
	"time"
)

// The WAL is copied into the database by two parties. The writer's
// automatic checkpoint (at walCheckpointBytes) is the one that completes
// a pass, after which the next commit starts the WAL over; copying up to
// 128 MiB of frames inside the writer stalled every send waiting for a
// commit for as long (docs/BENCHMARKS.md). So once the WAL is at
// ckStartPct of that size, a checkpointer goroutine on a connection of its
// own copies what has accumulated, every checkpointEvery once ckMinBytes
// have, with a PASSIVE checkpoint that runs alongside the writer's
// commits; the writer's own checkpoint then has at most a few MiB left
// to copy. Before that nothing is copied early, so a page rewritten many
// times between checkpoints (the log's segments reuse freed pages within
// seconds) is copied once; each background pass copies each page written
// since the one before, so they start late and copy 8 MiB at a time:
// starting at half the WAL with 2 MiB passes, checkpoints wrote 0.7 of
// what the WAL did, at three quarters with 8 MiB 0.3 (BenchmarkDiskWrites,
// 200,000 messages; docs/BENCHMARKS.md).
const (
	checkpointEvery = 100 * time.Millisecond
	// ckStartPct: background copying starts at this percentage of
	// walCheckpointBytes.
	ckStartPct = 75
	// ckMinBytes: a background pass copies at least this much WAL.
	ckMinBytes = 8 << 20
)

// walFrames reads the WAL's last committed frame and the frames already
// copied into the database from the wal-index (the -shm file: mxFrame at
// byte 16 of its header, nBackfill at byte 96; native byte order, see
// https://www.sqlite.org/walformat.html). The figures are advisory: a
// torn read only makes a pass come early or late.
func walFrames(f *os.File) (mxFrame, nBackfill uint32, ok bool) {
	var b [100]byte
	if n, err := f.ReadAt(b[:], 0); n < len(b) || err != nil {
		return 0, 0, false
	}
	return binary.NativeEndian.Uint32(b[16:]), binary.NativeEndian.Uint32(b[96:]), true
}

// checkpointer runs background checkpoints (above) until the store
// closes.
func (s *Store) checkpointer(ck *sql.DB, shmPath string, pageSize, walBytes int) {
	defer close(s.ckDone)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var shm *os.File
	defer func() {
		if shm != nil {
			shm.Close()
		}
	}()
	start := uint32(walBytes / 100 * ckStartPct / pageSize)
	least := uint32(ckMinBytes / pageSize)
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if shm == nil {
			f, err := os.Open(shmPath)
			if err != nil {
				continue // not made yet
			}
			shm = f
		}
		mx, done, ok := walFrames(shm)
		if !ok || mx < start || mx-min(done, mx) < least {
			continue
		}
		if _, err := ck.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`); err == nil {
			s.bgCheckpoints.Add(1)
		}
	}
}
