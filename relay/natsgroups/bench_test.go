package natsgroups_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sotto/relay"
	"sotto/relay/natsbus/natstest"
	"sotto/relay/natsgroups"
	"sotto/relay/sqlitestore"
)

// BenchmarkGroupFanOutStorage stores 100 group messages (after a first one) of 1 KiB to m
// member devices on JetStream and on SQLite, alternating in each round,
// and reports for each the bytes stored per message (JetStream: the
// live bytes of the bucket and stream; SQLite: the database file after
// a checkpoint), the time per message stored and the messages fetched
// per second by 10 member devices reading everything (FetchGroups, 256
// at a time, and acknowledging).
//
//	go test ./relay/natsgroups -run '^$' -bench GroupFanOutStorage -benchtime 2x
func BenchmarkGroupFanOutStorage(b *testing.B) {
	const msgs = 100
	content := make([]byte, 1024)
	rand.Read(content)
	ctx := context.Background()
	nc := natstest.Conn(b)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	for _, m := range []int{10, 100, 1000} {
		devs := make([]relay.DeviceAddr, m)
		for i := range devs {
			devs[i].Account[0], devs[i].Account[1] = byte(i>>8), byte(i)
			devs[i].Account[2] = 1
			devs[i].Device = 1
		}
		sender := relay.DeviceAddr{Device: 1}
		readers := devs[:10]
		b.Run(fmt.Sprintf("devices=%d", m), func(b *testing.B) {
			var bytes, nanos, fetchNanos, fetched [2]int64 // 0: SQLite, 1: JetStream
			for b.Loop() {
				for backend := range 2 {
					var gs relay.GroupStore
					var size func() int64
					if backend == 0 {
						dir := b.TempDir()
						s := openSQLite(b, dir)
						gs, size = s, func() int64 {
							n := sqliteSize(b, gs.(*sqlitestore.Store), dir)
							gs = openSQLite(b, dir)
							return n
						}
					} else {
						opts := testOptions(b, nc)
						s, err := natsgroups.Open(ctx, nc, opts)
						if err != nil {
							b.Fatal(err)
						}
						gs, size = s, func() int64 { return jetStreamSize(b, js, opts) }
					}
					if _, err := gs.CommitGroup(ctx, &relay.GroupCommit{GroupID: []byte("g"), Sender: sender, Commit: []byte("c"),
						Welcome: []byte("w"), Added: devs, Timestamp: t0}); err != nil {
						b.Fatal(err)
					}
					// One message first, so that the base is a head holding a
					// message, not the creating commit's member list.
					if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: []byte("g"), Sender: sender, MessageID: []byte("first"),
						Content: content, Timestamp: t0}); err != nil {
						b.Fatal(err)
					}
					base := size()
					start := time.Now()
					for i := range msgs {
						if _, err := gs.AppendGroup(ctx, &relay.GroupSend{GroupID: []byte("g"), Sender: sender, MessageID: fmt.Appendf(nil, "m%d", i),
							Content: content, Timestamp: t0}); err != nil {
							b.Fatal(err)
						}
					}
					nanos[backend] += time.Since(start).Nanoseconds()
					bytes[backend] += size() - base
					start = time.Now()
					for _, d := range readers {
						for {
							got, err := gs.FetchGroups(ctx, d, 256)
							if err != nil {
								b.Fatal(err)
							}
							if len(got) == 0 {
								break
							}
							fetched[backend] += int64(len(got))
							if err := gs.AckGroups(ctx, d, []relay.GroupAck{{GroupID: got[0].GroupID, Seq: got[len(got)-1].Seq}}); err != nil {
								b.Fatal(err)
							}
						}
					}
					fetchNanos[backend] += time.Since(start).Nanoseconds()
				}
			}
			if fetched[0] != fetched[1] || fetched[1] != int64(b.N*len(readers)*(msgs+2)) {
				b.Fatalf("fetched %v messages, want %d each", fetched, b.N*len(readers)*(msgs+2))
			}
			for backend, name := range []string{"sqlite", "js"} {
				b.ReportMetric(float64(bytes[backend])/float64(b.N*msgs), name+"-B/msg")
				b.ReportMetric(float64(nanos[backend])/float64(b.N*msgs)/1e6, name+"-ms/msg")
				b.ReportMetric(float64(fetched[backend])/(float64(fetchNanos[backend])/1e9), name+"-fetched/s")
			}
		})
	}
}

func openSQLite(b *testing.B, dir string) *sqlitestore.Store {
	s, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// sqliteSize closes s (checkpointing the WAL into the file) and returns
// the database's size, as relay/sqlitestore's benchmark does.
func sqliteSize(b *testing.B, s *sqlitestore.Store, dir string) int64 {
	b.Helper()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, f := range []string{sqlitestore.FileName, sqlitestore.FileName + "-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// jetStreamSize is the live bytes of the group store's bucket and stream.
func jetStreamSize(b *testing.B, js jetstream.JetStream, o natsgroups.Options) int64 {
	b.Helper()
	var n int64
	for _, name := range []string{"KV_" + o.Bucket, o.Stream} {
		st, err := js.Stream(context.Background(), name)
		if err != nil {
			b.Fatal(err)
		}
		info, err := st.Info(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		n += int64(info.State.Bytes)
	}
	return n
}
