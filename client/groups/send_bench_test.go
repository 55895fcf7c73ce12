package groups

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSendThousand is the creator's real client sending to a group of
// 1,000 devices through a real relay (SQLite on tmpfs), one message at a
// time: encrypt, keep the advanced sending ratchet, send, keep the
// message. The group is built once, before the timer starts.
//
//	go test ./client/groups -run '^$' -bench SendThousand -benchtime 20x
func BenchmarkSendThousand(b *testing.B) {
	const n = 1000
	ctx := context.Background()
	r := startScaleRelay(b)
	devs := r.enroll(b, append([]string{"creator"}, names("m", n-1)...))
	r.simulate(b, devs[1:])
	creator := r.manager(b, devs[0])
	var users []string
	for _, d := range devs[1:] {
		users = append(users, d.self.Username)
	}
	id, err := creator.Create(ctx, "everyone", users...)
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	w0, c0 := ioBytes(b), cpuTime(b)
	for b.Loop() {
		i++
		if _, err := creator.Send(ctx, id, fmt.Sprintf("message %d", i)); err != nil {
			b.Fatal(err)
		}
	}
	// What this process wrote to storage devices (the creator's store;
	// the relay's is on tmpfs), per message.
	b.ReportMetric(float64(ioBytes(b)-w0)/float64(i), "disk-B/msg")
	// CPU of the whole process (the relay's included), per message.
	b.ReportMetric(float64(cpuTime(b)-c0)/float64(time.Millisecond)/float64(i), "cpu-ms/msg")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ioBytes is the bytes this process caused to be written to storage
// (Linux /proc/self/io write_bytes), with its dirty pages flushed.
func ioBytes(b *testing.B) int64 {
	b.Helper()
	syscall.Sync()
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no write_bytes in /proc/self/io")
	return 0
}
