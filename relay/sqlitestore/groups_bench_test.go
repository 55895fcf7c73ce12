package sqlitestore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/sqlitestore"
)

// BenchmarkGroupFanOutStorage stores 100 messages of 1 KiB to m member
// devices, once as group messages (one row each, per-device cursors) and
// once as 1:1 envelopes (one copy per device, as a client without groups
// would send them), and reports the database bytes per message and the
// time per message stored.
//
//	go test ./relay/sqlitestore -run '^$' -bench GroupFanOutStorage -benchtime 2x
func BenchmarkGroupFanOutStorage(b *testing.B) {
	const msgs = 100
	content := make([]byte, 1024)
	rand.Read(content)
	ctx := context.Background()
	t0 := time.Now()
	for _, m := range []int{10, 100, 1000} {
		devs := make([]relay.DeviceAddr, m)
		for i := range devs {
			devs[i].Account[0], devs[i].Account[1] = byte(i>>8), byte(i)
			devs[i].Account[2] = 1
			devs[i].Device = 1
		}
		sender := relay.DeviceAddr{Device: 1}
		for _, mode := range []string{"group", "one-copy-per-device"} {
			b.Run(fmt.Sprintf("devices=%d/%s", m, mode), func(b *testing.B) {
				var bytes, nanos int64
				for b.Loop() {
					dir := b.TempDir()
					s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
					if err != nil {
						b.Fatal(err)
					}
					if mode == "group" {
						if _, err := s.CommitGroup(ctx, &relay.GroupCommit{GroupID: []byte("g"), Sender: sender, Commit: []byte("c"),
							Welcome: []byte("w"), Added: devs, Timestamp: t0}); err != nil {
							b.Fatal(err)
						}
					}
					base := dbSize(b, s, dir)
					s, err = sqlitestore.Open(ctx, dir, sqlitestore.Options{})
					if err != nil {
						b.Fatal(err)
					}
					start := time.Now()
					for i := range msgs {
						id := fmt.Appendf(nil, "m%d", i)
						if mode == "group" {
							_, err = s.AppendGroup(ctx, &relay.GroupSend{GroupID: []byte("g"), Sender: sender, MessageID: id, Content: content, Timestamp: t0})
						} else {
							sd := &relay.Send{Sender: sender, MessageID: id, Timestamp: t0}
							for _, d := range devs {
								var e relay.Envelope
								rand.Read(e.ID[8:])
								e.Recipient, e.Sender, e.SenderDevice, e.Timestamp, e.Type, e.Content, e.MessageID = d, "sender", 1, t0, 1, content, id
								sd.Envelopes = append(sd.Envelopes, e)
							}
							_, err = s.Append(ctx, sd)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					nanos += time.Since(start).Nanoseconds()
					bytes += dbSize(b, s, dir) - base
				}
				b.ReportMetric(float64(bytes)/float64(b.N*msgs), "B/msg")
				b.ReportMetric(float64(nanos)/float64(b.N*msgs)/1e6, "ms/msg")
			})
		}
	}
}

// dbSize closes s (checkpointing the WAL into the file) and returns the
// database file's size.
func dbSize(b *testing.B, s *sqlitestore.Store, dir string) int64 {
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
