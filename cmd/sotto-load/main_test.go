package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/sqlitestore"
)

func TestValidateReportsEverything(t *testing.T) {
	err := Config{Devices: 1}.Validate()
	for _, want := range []string{"-relay", "-code", "-devices", "-size", "-duration"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("missing %s in %v", want, err)
		}
	}
}

// startRelay runs a real relay in-process and returns its URL and an
// activation code with enough seats.
func startRelay(t *testing.T) (string, string) {
	t.Helper()
	store, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.EnrollRate = relay.Rate{PerSecond: 1000, Burst: 1000}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close(); store.Close() })
	code, id := relay.NewActivationCode()
	now := time.Now()
	if err := store.CreateCode(context.Background(), relay.Code{ID: id, Hash: relay.HashActivationCode(code), Seats: 100, Created: now, Expires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return "ws" + strings.TrimPrefix(hs.URL, "http"), code
}

func TestThroughputAgainstRealRelay(t *testing.T) {
	url, code := startRelay(t)
	var out strings.Builder
	args := []string{"throughput", "-relay", url, "-code", code, "-devices", "4", "-duration", "700ms", "-warmup", "200ms", "-prefix", "t"}
	if rc := run(context.Background(), args, &out, &out); rc != 0 {
		t.Fatalf("exit %d:\n%s", rc, out.String())
	}
	m := regexp.MustCompile(`acked by recipients \(deleted\): +(\d+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no acked line:\n%s", out.String())
	}
	if n, _ := strconv.Atoi(m[1]); n == 0 {
		t.Fatalf("nothing delivered and acked:\n%s", out.String())
	}
}

func TestIdleAgainstRealRelay(t *testing.T) {
	url, code := startRelay(t)
	var out strings.Builder
	args := []string{"idle", "-relay", url, "-code", code, "-devices", "3", "-hold", "100ms", "-prefix", "i"}
	if rc := run(context.Background(), args, &out, &out); rc != 0 {
		t.Fatalf("exit %d:\n%s", rc, out.String())
	}
	if !strings.Contains(out.String(), "relay with 3 open connections") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func TestParseStatCPU(t *testing.T) {
	// A real /proc/PID/stat line; the command name contains a space and ')'.
	line := "4242 (sott) d) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseStatCPU(line)
	if err != nil || got != 3250*time.Millisecond {
		t.Fatalf("got %v, %v; want 3.25s", got, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Fatal("accepted a malformed line")
	}
	self, err := processCPU(0)
	if err != nil || self < 0 {
		t.Fatalf("own CPU time: %v, %v", self, err)
	}
}
