package main

import (
	"context"
	"fmt"
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
	"sotto/wire"
)

func TestValidateReportsEverything(t *testing.T) {
	err := Config{Devices: 1, Prefix: "Upper"}.Validate()
	for _, want := range []string{"-relay", "-data", "-devices", "-size", "-duration", "-prefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("missing %s in %v", want, err)
		}
	}
}

// startRelay runs a real relay in-process and returns its URL and data
// directory.
func startRelay(t *testing.T) (string, string) {
	return startRelayLimited(t, relay.DefaultConfig().DeviceRate)
}

// startRelayLimited is startRelay with a per-connection request rate.
func startRelayLimited(t *testing.T, deviceRate relay.Rate) (string, string) {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = store, store
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.EnrollRate = relay.Rate{PerSecond: 1000, Burst: 1000}
	cfg.DeviceRate = deviceRate
	cfg.SealedRate = relay.Rate{PerSecond: 100000, Burst: 100000} // every simulated device sends from 127.0.0.1
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { srv.Close(); hs.Close(); store.Close() })
	return "ws" + strings.TrimPrefix(hs.URL, "http"), dir
}

// TestThroughputAgainstRealRelay runs both modes against a real relay
// (with its default per-device rate limit, so that RATE_LIMITED retries
// may happen) and requires every durable message to be delivered once
// and acked.
func TestThroughputAgainstRealRelay(t *testing.T) {
	for _, mode := range []struct {
		name, rate, quiet string
		named             bool
	}{{"back-to-back", "0", "true", false}, {"rate", "400", "true", false}, {"answered-acks", "0", "false", false},
		{"named-back-to-back", "0", "true", true}, {"named-rate", "400", "true", true}} {
		t.Run(mode.name, func(t *testing.T) {
			url, data := startRelay(t)
			var out strings.Builder
			args := []string{"throughput", "-relay", url, "-data", data, "-devices", "4", "-rate", mode.rate,
				"-duration", "700ms", "-warmup", "200ms", "-prefix", "t", "-ack-batch", "8", "-quiet-acks=" + mode.quiet, "-ack-delay", "20ms",
				"-authenticated=" + strconv.FormatBool(mode.named)}
			if rc := run(context.Background(), args, &out, &out); rc != 0 {
				t.Fatalf("exit %d:\n%s", rc, out.String())
			}
			// What the measured window saw depends on the machine's load (a
			// loaded machine may ack nothing in 700 ms): it is checked
			// against the whole run, which is drained and must be complete.
			m := regexp.MustCompile(`acked by recipients \(deleted\): +(\d+)`).FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("no acked line:\n%s", out.String())
			}
			v := regexp.MustCompile(`verification \(whole run, drained after .*\): (\d+) sends durable, (\d+) delivered once, lost 0, duplicates 0, reordered 0, malformed or misaddressed 0, delivered without a durable ack 0, acked (\d+) of (\d+) envelopes`).FindStringSubmatch(out.String())
			if v == nil || v[1] != v[2] || v[3] != v[4] || v[2] != v[3] || v[1] == "0" {
				t.Fatalf("verification failed:\n%s", out.String())
			}
			whole := regexp.MustCompile(`relay's counters over the whole run: stored (\d+), pushed (\d+), acked (\d+)`).FindStringSubmatch(out.String())
			if whole == nil || whole[1] != v[1] || whole[2] != v[1] || whole[3] != v[1] {
				t.Fatalf("the relay's counters disagree with the verification (%s durable):\n%s", v[1], out.String())
			}
			if inWindow, _ := strconv.Atoi(m[1]); inWindow > atoi(t, v[1]) {
				t.Fatalf("acked in the window %d, more than in the whole run %s:\n%s", inWindow, v[1], out.String())
			}
			if sealed := strings.Contains(out.String(), "sealed sends (SealedSend"); sealed == mode.named {
				t.Fatalf("sealed sends %v, want %v:\n%s", sealed, !mode.named, out.String())
			}
			if q := strings.Contains(out.String(), "acks were quiet"); q != (mode.quiet == "true") {
				t.Fatalf("quiet acks %v, want %s:\n%s", q, mode.quiet, out.String())
			}
			t.Log(out.String())
		})
	}
}

// TestThroughputRetriesRateLimited runs against a relay that refuses
// most requests with RATE_LIMITED: refused sends and (quiet) acks are
// retried, the refusals are reported, and still every durable message
// is delivered once and acked.
func TestThroughputRetriesRateLimited(t *testing.T) {
	url, data := startRelayLimited(t, relay.Rate{PerSecond: 40, Burst: 4})
	var out strings.Builder
	args := []string{"throughput", "-relay", url, "-data", data, "-devices", "3", "-rate", "0", "-inflight", "4",
		"-duration", "700ms", "-warmup", "100ms", "-prefix", "rl", "-ack-delay", "0", "-ack-batch", "2"}
	if rc := run(context.Background(), args, &out, &out); rc != 0 {
		t.Fatalf("exit %d:\n%s", rc, out.String())
	}
	if !regexp.MustCompile(`errors: [1-9]\d* \(whole run, by code: .*RATE_LIMITED:`).MatchString(out.String()) {
		t.Fatalf("no RATE_LIMITED refusals reported:\n%s", out.String())
	}
	if !regexp.MustCompile(`: [1-9]\d* sends durable, \d+ delivered once, lost 0, duplicates 0`).MatchString(out.String()) {
		t.Fatalf("verification:\n%s", out.String())
	}
	t.Log(out.String())
}

// TestBacklogAgainstRealRelay fills a queue larger than the relay's
// delivery window and its request burst, then drains it: every message
// delivered once and acked, for sealed and named sends.
func TestBacklogAgainstRealRelay(t *testing.T) {
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprint("named=", named), func(t *testing.T) {
			url, data := startRelay(t)
			var out strings.Builder
			args := []string{"backlog", "-relay", url, "-data", data, "-messages", "1500", "-prefix", "b",
				"-authenticated=" + strconv.FormatBool(named)}
			if rc := run(context.Background(), args, &out, &out); rc != 0 {
				t.Fatalf("exit %d:\n%s", rc, out.String())
			}
			if !regexp.MustCompile(`verification \(drained after .*\): 1500 queued, 1500 delivered once, lost 0, duplicates 0, malformed or misaddressed 0, acked 1500`).MatchString(out.String()) {
				t.Fatalf("verification:\n%s", out.String())
			}
			t.Log(out.String())
		})
	}
}

func TestIdleAgainstRealRelay(t *testing.T) {
	url, data := startRelay(t)
	var out strings.Builder
	args := []string{"idle", "-relay", url, "-data", data, "-devices", "3", "-hold", "100ms", "-prefix", "i"}
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

// TestQuietAckRefusedLate: a quiet Ack that the relay refuses only after
// many later Acks were written (it reads a connection's frames as its
// pipeline has room, and retries add Acks) is still retried with its
// ids, not taken for a response to no request; a quiet Ack is
// forgotten only once an OK response to a later request arrived.
func TestQuietAckRefusedLate(t *testing.T) {
	r := &runner{quiet: true}
	d := &loadDev{simDevice: &simDevice{ws: testConn(t, nil)}}
	id := func(i int) (e [envelopeIDSize]byte) { e[0] = byte(i); return e }
	d.ws.mu.Lock()
	for i := 1; i <= 40; i++ {
		r.queueAckIDs(d, [][envelopeIDSize]byte{id(i)})
	}
	d.ws.mu.Unlock()
	// The first Ack (request 1) is refused now.
	r.response(d, &hotFrame{kind: kindResponse, id: 1, code: wire.ErrorCode_RATE_LIMITED, retryAfterMs: 1}, true)
	if bad, e := d.cBad.Load(), d.cErrors.Load(); bad != 0 || e != 1 {
		t.Fatalf("refusal of an early quiet Ack: %d responses to no request, %d errors; want 0, 1", bad, e)
	}
	// Its retry is queued (request 41) with the same id.
	for {
		d.ws.mu.Lock()
		n := d.reqID
		var last pendReq
		var ids [][envelopeIDSize]byte
		if n > 40 {
			last = d.quiet[len(d.quiet)-1]
			ids = d.quietIDs[last.off-d.qBase:]
		}
		d.ws.mu.Unlock()
		if n > 40 {
			if n != 41 || last.id != 41 || len(ids) != 1 || ids[0] != id(1) {
				t.Fatalf("retry: request %d, last quiet Ack %+v with ids %v; want request 41 with id 1", n, last, ids)
			}
			break
		}
		time.Sleep(time.Millisecond)
	}
	if got := d.cQuiet.Load(); got != 40 {
		t.Fatalf("quiet acked ids %d, want 40", got)
	}
	// An OK response to a later request (a send, 42) lets every quiet Ack
	// before it go; a later refusal of the retry would still be matched.
	d.ws.mu.Lock()
	d.reqID++
	d.pendPush(pendReq{id: d.reqID, seq: 1, kind: pendSend})
	d.ws.mu.Unlock()
	r.response(d, &hotFrame{kind: kindResponse, id: 42, code: wire.ErrorCode_OK, body: fRespSend}, true)
	d.ws.mu.Lock()
	kept, keptIDs := len(d.quiet), len(d.quietIDs)
	d.ws.mu.Unlock()
	if kept != 0 || keptIDs != 0 || d.cBad.Load() != 0 || d.cDurable.Load() != 1 {
		t.Fatalf("after an OK to a later request: %d quiet Acks (%d ids) kept, %d bad, %d durable; want 0, 0, 0, 1",
			kept, keptIDs, d.cBad.Load(), d.cDurable.Load())
	}
	// A refusal after that (no relay sends one) is a response to no
	// request, reported apart from misaddressed envelopes.
	r.response(d, &hotFrame{kind: kindResponse, id: 5, code: wire.ErrorCode_RATE_LIMITED, retryAfterMs: 1}, true)
	if d.cBad.Load() != 1 || d.cNoReq.Load() != 1 {
		t.Fatalf("late refusal: %d bad, %d responses to no request; want 1, 1", d.cBad.Load(), d.cNoReq.Load())
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
