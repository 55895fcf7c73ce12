package signalpeer_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkLibsignal times libsignal's operations through interop/signal-node/bench.mjs,
// defined as signal/session's BenchmarkPQXDH, BenchmarkRatchetSameChain and
// BenchmarkRatchetDHStep define them, so that one command compares the two:
//
//	go test -run '^$' -bench . ./signal/session ./interop/signalpeer
//
// ns/op is libsignal's own wall time per operation as measured inside Node (process
// start-up excluded); cpu-ns/op its CPU time, the steadier figure on a shared machine.
func BenchmarkLibsignal(b *testing.B) { benchLibsignal(b, false) }

// BenchmarkLibsignalLatest is BenchmarkLibsignal on the newest libsignal release
// (interop/signal-node-latest), which requires SPQR.
func BenchmarkLibsignalLatest(b *testing.B) { benchLibsignal(b, true) }

func benchLibsignal(b *testing.B, latest bool) {
	for _, c := range []struct{ name, op string }{
		{"PQXDH", "pqxdh"},
		{"RatchetSameChain", "same_chain"},
		{"RatchetDHStep", "dh_step"},
	} {
		b.Run(c.name, func(b *testing.B) {
			node, script := nodePeerScript(b)
			bench := filepath.Join(filepath.Dir(script), "bench.mjs")
			args := []string{bench, "--op", c.op, "--n", strconv.Itoa(b.N)}
			if latest {
				_, lib := nodeLib(b, "signal-node-latest", libsignalLatestVersion)
				args = append(args, "--lib", lib)
			}
			out, err := exec.Command(node, args...).Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					b.Fatalf("bench.mjs: %v\n%s", err, ee.Stderr)
				}
				b.Fatal(err)
			}
			var r struct {
				NsPerOp       float64  `json:"ns_per_op"`
				CPUNsPerOp    float64  `json:"cpu_ns_per_op"`
				InitiatorNsOp *float64 `json:"initiator_ns_per_op"`
				ResponderNsOp *float64 `json:"responder_ns_per_op"`
			}
			if err := json.Unmarshal(out, &r); err != nil {
				b.Fatalf("bench.mjs output %q: %v", out, err)
			}
			b.ReportMetric(r.NsPerOp, "ns/op")
			b.ReportMetric(r.CPUNsPerOp, "cpu-ns/op")
			if r.InitiatorNsOp != nil && r.ResponderNsOp != nil {
				b.ReportMetric(*r.InitiatorNsOp, "initiator-ns/op")
				b.ReportMetric(*r.ResponderNsOp, "responder-ns/op")
			}
		})
	}
}
