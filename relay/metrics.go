package relay

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"

	"sotto/wire"
)

// Metrics are the relay's counters, exported in Prometheus text format.
type Metrics struct {
	connections atomic.Uint64
	framesIn    atomic.Uint64
	framesOut   atomic.Uint64
	writes      atomic.Uint64
	sends       atomic.Uint64
	// Sends (named and sealed) handled on the general path, waiting for
	// their commit on the read goroutine: something they needed was not
	// cached (fastpath.go). Steady traffic keeps this flat.
	generalSends atomic.Uint64
	stored       atomic.Uint64
	delivered    atomic.Uint64
	acked        atomic.Uint64
	expired      atomic.Uint64
	authFailures atomic.Uint64
	// Key log heads the witness co-signed, and submissions it refused or
	// that failed.
	witnessCosigned atomic.Uint64
	witnessFailures atomic.Uint64
	errors          [wire.ErrorCode_UNAVAILABLE + 1]atomic.Uint64
}

func newMetrics() *Metrics { return new(Metrics) }

func (m *Metrics) countError(code wire.ErrorCode) {
	if int(code) >= 0 && int(code) < len(m.errors) {
		m.errors[code].Add(1)
	}
}

// Stored returns how many envelopes were durably stored.
func (m *Metrics) Stored() uint64 { return m.stored.Load() }

// Delivered returns how many envelopes were pushed to devices.
func (m *Metrics) Delivered() uint64 { return m.delivered.Load() }

// Acked returns how many envelope ids devices acknowledged.
func (m *Metrics) Acked() uint64 { return m.acked.Load() }

func (m *Metrics) write(w io.Writer, open int) {
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	fmt.Fprintf(w, "# HELP sotto_connections_open Open client connections.\n# TYPE sotto_connections_open gauge\nsotto_connections_open %d\n", open)
	counter("sotto_connections_total", "Client connections accepted.", m.connections.Load())
	counter("sotto_frames_received_total", "Frames received from clients.", m.framesIn.Load())
	counter("sotto_frames_sent_total", "Frames sent to clients.", m.framesOut.Load())
	counter("sotto_socket_writes_total", "Writes of queued frames to client connections (frames per write = coalescing).", m.writes.Load())
	counter("sotto_sends_total", "SendMessage requests stored (including duplicates).", m.sends.Load())
	counter("sotto_sends_general_path_total", "Sends handled on the general path (something they needed was not cached), not on the fast path.", m.generalSends.Load())
	counter("sotto_messages_stored_total", "Envelopes durably stored.", m.stored.Load())
	counter("sotto_messages_delivered_total", "Envelopes pushed to devices.", m.delivered.Load())
	counter("sotto_messages_acked_total", "Envelope ids acknowledged by devices.", m.acked.Load())
	counter("sotto_messages_expired_total", "Envelopes deleted after the mailbox TTL.", m.expired.Load())
	counter("sotto_auth_failures_total", "Failed authentications.", m.authFailures.Load())
	counter("sotto_keylog_witness_cosigned_total", "Key log heads the witness co-signed.", m.witnessCosigned.Load())
	counter("sotto_keylog_witness_failures_total", "Key log head submissions the witness refused or that failed.", m.witnessFailures.Load())
	fmt.Fprintf(w, "# HELP sotto_errors_total Error responses by code.\n# TYPE sotto_errors_total counter\n")
	for code := range m.errors {
		if code == 0 {
			continue
		}
		fmt.Fprintf(w, "sotto_errors_total{code=%q} %d\n", wire.ErrorCode(code).String(), m.errors[code].Load())
	}
	writeProcess(w)
}

// MetricsWriter is implemented by backends that export their own
// counters on /metrics.
type MetricsWriter interface{ WriteMetrics(io.Writer) }

// writeProcess adds the process figures a load test needs.
func writeProcess(w io.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	gauge("go_goroutines", "Goroutines.", uint64(runtime.NumGoroutine()))
	gauge("go_memstats_heap_inuse_bytes", "Heap in use.", ms.HeapInuse)
	gauge("go_memstats_stack_inuse_bytes", "Stacks in use.", ms.StackInuse)
	gauge("go_memstats_sys_bytes", "Memory obtained from the OS.", ms.Sys)
	if rss, ok := residentBytes(); ok {
		gauge("process_resident_memory_bytes", "Resident set size.", rss)
	}
}

// residentBytes reads the resident set size from /proc (Linux only).
func residentBytes() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * uint64(os.Getpagesize()), true
}

// writeLimitMetrics exports the connection caps' state.
func (s *Server) writeLimitMetrics(w io.Writer) {
	unauth, addrs, byAddr, byUnauth, evicted := s.limits.counts()
	fmt.Fprintf(w, "# HELP sotto_connections_unauthenticated Open connections that have not authenticated (sealed-send and provisioning ones included).\n# TYPE sotto_connections_unauthenticated gauge\nsotto_connections_unauthenticated %d\n", unauth)
	fmt.Fprintf(w, "# HELP sotto_connection_addresses Client address keys holding connections.\n# TYPE sotto_connection_addresses gauge\nsotto_connection_addresses %d\n", addrs)
	fmt.Fprintf(w, "# HELP sotto_connections_refused_total Upgrades refused by the connection caps.\n# TYPE sotto_connections_refused_total counter\n")
	fmt.Fprintf(w, "sotto_connections_refused_total{cap=\"address\"} %d\nsotto_connections_refused_total{cap=\"unauthenticated\"} %d\n", byAddr, byUnauth)
	httpOpen, httpRefused := s.http.counts()
	fmt.Fprintf(w, "# HELP sotto_http_connections_open HTTP connections not (yet) WebSockets, on listeners using Server.ConnState.\n# TYPE sotto_http_connections_open gauge\nsotto_http_connections_open %d\n", httpOpen)
	fmt.Fprintf(w, "# HELP sotto_http_connections_refused_total HTTP connections closed at once by the per-address cap.\n# TYPE sotto_http_connections_refused_total counter\nsotto_http_connections_refused_total %d\n", httpRefused)
	fmt.Fprintf(w, "# HELP sotto_connections_evicted_total Unauthenticated connections closed to make room for new ones.\n# TYPE sotto_connections_evicted_total counter\nsotto_connections_evicted_total %d\n", evicted)
}
