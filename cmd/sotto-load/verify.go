package main

// The end-of-run check: nothing the relay acknowledged is lost, nothing is
// delivered twice or to the wrong device.

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrVerification reports messages lost, duplicated or misdelivered.
var ErrVerification = errors.New("sotto-load: verification failed")

// verify compares, per sender, the sequence numbers the relay
// acknowledged as durable with those its recipient received (after the
// drain, so over the whole run including warm-up).
func (r *runner) verify(out io.Writer, drained bool, drain time.Duration, relayAcked int64) error {
	var lost, unacked int
	var readErrs []string
	for i, d := range r.devs {
		from := r.devs[(i+len(r.devs)-1)%len(r.devs)]
		lost += from.durable.andNotCount(d.got)
		unacked += d.got.andNotCount(from.durable)
		if d.readErr != nil && len(readErrs) < 3 {
			readErrs = append(readErrs, fmt.Sprintf("device %d: %v", i, d.readErr))
		}
		if d.sealedErr != nil && len(readErrs) < 3 {
			readErrs = append(readErrs, fmt.Sprintf("device %d, sealed connection: %v", i, d.sealedErr))
		}
	}
	c := r.snapshot()
	state := "drained"
	if !drained {
		state = "NOT drained"
	}
	fmt.Fprintf(out, "verification (whole run, %s after %v): %d sends durable, %d delivered once, lost %d, duplicates %d, reordered %d, malformed or misaddressed %d, delivered without a durable ack %d, acked %d of %d envelopes\n",
		state, drain.Round(time.Millisecond), c.durable, c.delivered, lost, c.dup, c.reorder, c.bad, unacked, c.acked, c.envelopes)
	if r.quiet {
		var stray int64
		for _, d := range r.devs {
			stray += d.cStray.Load()
		}
		fmt.Fprintf(out, "  acks were quiet (answered only on failure); the relay counted %d acked ids since the start", relayAcked)
		if stray > 0 {
			fmt.Fprintf(out, "; it answered %d quiet Acks (a relay without quiet Acks?)", stray)
		}
		fmt.Fprintln(out)
	}
	var noReq int64
	for _, d := range r.devs {
		noReq += d.cNoReq.Load()
	}
	if noReq > 0 {
		fmt.Fprintf(out, "  of the malformed or misaddressed, %d were responses to no request (not envelopes)\n", noReq)
	}
	if len(readErrs) > 0 {
		fmt.Fprintf(out, "  connection errors: %s\n", strings.Join(readErrs, "; "))
	}
	if lost > 0 || c.bad > 0 || !drained || len(readErrs) > 0 {
		return ErrVerification
	}
	return nil
}
