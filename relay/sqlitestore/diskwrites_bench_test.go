package sqlitestore_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/sqlitestore"
)

// BenchmarkDiskWrites measures what the mailbox writes to disk per
// message under a sotto-load-like pattern: 1,000 devices, each with one
// 300-byte send in flight to another device; every recipient acks what
// it got every 250 ms. It first runs warm messages (the dedupe table
// fills as it would in a real run), then b.N messages measured. Reported:
// bytes this process caused to be written to storage per message
// (write_bytes of /proc/self/io: WAL appends, checkpoints and all), WAL
// frames per message, and, with -v, the frames per message by B-tree
// (from the WAL of the measured phase, mapped with dbstat).
func BenchmarkDiskWrites(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	var opts sqlitestore.Options
	if v, err := strconv.Atoi(os.Getenv("SOTTO_BENCH_PAGE_SIZE")); err == nil {
		opts.PageSize = v
	}
	s, err := sqlitestore.Open(ctx, dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const devices = 1000
	warm := 100_000
	if v, err := strconv.Atoi(os.Getenv("SOTTO_BENCH_WARM")); err == nil {
		warm = v
	}
	load := newAckLoad(s, devices)
	load.run(ctx, b, warm)
	load.flush(ctx, b)
	// Start the measured phase on an empty WAL, so that every frame in
	// it at the end belongs to this phase.
	if err := checkpointTruncate(ctx, dir); err != nil {
		b.Fatal(err)
	}
	w0 := writeBytes(b)
	b.ResetTimer()
	load.run(ctx, b, b.N)
	load.flush(ctx, b)
	b.StopTimer()
	w1 := writeBytes(b)
	b.ReportMetric(float64(w1-w0)/float64(b.N), "disk-B/msg")
	frames, err := walFrames(filepath.Join(dir, sqlitestore.FileName+"-wal"))
	if err != nil {
		b.Fatal(err)
	}
	commits := 0
	for _, f := range frames {
		if f.commit {
			commits++
		}
	}
	b.ReportMetric(float64(len(frames))/float64(b.N), "frames/msg")
	b.ReportMetric(float64(b.N)/float64(max(commits, 1)), "msgs/commit")
	owners, err := pageOwners(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	by := map[string]int{}
	distinct := map[uint32]bool{}
	for _, f := range frames {
		name := owners[f.page]
		if name == "" {
			name = "(free or new)"
		}
		by[name]++
		distinct[f.page] = true
	}
	var names []string
	for n := range by {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return by[names[i]] > by[names[j]] })
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d messages, %d commits, %d WAL frames (%d distinct pages):", b.N, commits, len(frames), len(distinct))
	for _, n := range names {
		fmt.Fprintf(&sb, " %s %.3f;", n, float64(by[n])/float64(b.N))
	}
	b.Log(sb.String(), " (frames per message; page size ", pageSize(b, dir), ")")
}

// ackLoad drives a Store like sotto-load drives a relay.
type ackLoad struct {
	s       *sqlitestore.Store
	devices int
	content []byte

	mu      sync.Mutex
	pending map[relay.DeviceAddr][]relay.EnvelopeID // stored, not yet acked
}

func newAckLoad(s *sqlitestore.Store, devices int) *ackLoad {
	c := make([]byte, 300)
	rand.Read(c)
	return &ackLoad{s: s, devices: devices, content: c, pending: map[relay.DeviceAddr][]relay.EnvelopeID{}}
}

func loadDevice(i int) relay.DeviceAddr {
	var a relay.AccountID
	rand.Read(a[:8])
	binary.BigEndian.PutUint32(a[12:], uint32(i))
	return relay.DeviceAddr{Account: a, Device: 1}
}

// run sends n messages, each device one at a time, acking every 250 ms.
func (l *ackLoad) run(ctx context.Context, b *testing.B, n int) {
	devs := make([]relay.DeviceAddr, l.devices)
	for i := range devs {
		devs[i] = loadDevice(i)
	}
	stop := make(chan struct{})
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				l.flush(ctx, b)
			}
		}
	}()
	var wg sync.WaitGroup
	per := (n + l.devices - 1) / l.devices
	left := n
	for i := range devs {
		k := min(per, left)
		left -= k
		wg.Add(1)
		go func() {
			defer wg.Done()
			to := devs[(i+1+i*7)%len(devs)]
			for range k {
				mid := make([]byte, 16)
				rand.Read(mid)
				sd := &relay.Send{Sender: devs[i], MessageID: mid, Timestamp: time.Now(), Envelopes: []relay.Envelope{{
					Recipient: to, Sender: "sender-name", SenderDevice: 1, Type: 1, Content: l.content, MessageID: mid,
				}}}
				if _, err := l.s.Append(ctx, sd); err != nil {
					b.Error(err)
					return
				}
				l.mu.Lock()
				l.pending[to] = append(l.pending[to], sd.Envelopes[0].ID)
				l.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-acked
}

// flush acks everything stored so far, one delete per recipient.
func (l *ackLoad) flush(ctx context.Context, b *testing.B) {
	l.mu.Lock()
	p := l.pending
	l.pending = map[relay.DeviceAddr][]relay.EnvelopeID{}
	l.mu.Unlock()
	var wg sync.WaitGroup
	for dev, ids := range p {
		wg.Add(1)
		l.s.DeleteAsync(dev, ids, func(err error) {
			if err != nil {
				b.Error(err)
			}
			wg.Done()
		})
	}
	wg.Wait()
}

func writeBytes(b *testing.B) uint64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no write_bytes in /proc/self/io")
	return 0
}

func checkpointTruncate(ctx context.Context, dir string) error {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlitestore.FileName))
	if err != nil {
		return err
	}
	defer db.Close()
	// The store's writer may be in a transaction (a rotation of the log):
	// try again for a while.
	for range 100 {
		var busy, log, done int
		if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &log, &done); err != nil {
			return err
		}
		if busy == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("checkpoint busy")
}

type walFrame struct {
	page   uint32
	commit bool
}

// walFrames parses the valid frames of a WAL file (those carrying the
// header's salts).
func walFrames(path string) ([]walFrame, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw) < 32 {
		return nil, nil
	}
	pageSize := int(binary.BigEndian.Uint32(raw[8:]))
	salt1, salt2 := binary.BigEndian.Uint32(raw[16:]), binary.BigEndian.Uint32(raw[20:])
	var out []walFrame
	for off := 32; off+24+pageSize <= len(raw); off += 24 + pageSize {
		h := raw[off:]
		if binary.BigEndian.Uint32(h[8:]) != salt1 || binary.BigEndian.Uint32(h[12:]) != salt2 {
			break
		}
		out = append(out, walFrame{page: binary.BigEndian.Uint32(h), commit: binary.BigEndian.Uint32(h[4:]) != 0})
	}
	return out, nil
}

// pageOwners maps page numbers to the table or index owning them.
func pageOwners(ctx context.Context, dir string) (map[uint32]string, error) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlitestore.FileName)+"?_pragma=query_only(on)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name, pageno FROM dbstat`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[uint32]string{}
	for rows.Next() {
		var name string
		var p uint32
		if err := rows.Scan(&name, &p); err != nil {
			return nil, err
		}
		out[p] = name
	}
	return out, rows.Err()
}

func pageSize(b *testing.B, dir string) int {
	raw, err := os.ReadFile(filepath.Join(dir, sqlitestore.FileName+"-wal"))
	if err != nil || len(raw) < 32 {
		b.Fatalf("WAL: %v", err)
	}
	return int(binary.BigEndian.Uint32(raw[8:]))
}
