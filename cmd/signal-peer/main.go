// Command signal-peer drives Sotto's Signal protocol implementation (sotto/signal/session
// and sotto/signal/fingerprint) through the signal-peer line protocol, so that tests can
// pair it with libsignal or with itself: it reads one JSON request per line on standard
// input and writes one JSON reply per line on standard output. Every party lives in
// memory. End of input ends the program.
//
// Usage:
//
//	go run ./cmd/signal-peer
//
// See docs/interop.md for the operations and the scenarios that use them.
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: signal-peer < requests > replies (no arguments; see docs/interop.md)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	p := newPeer(rand.Reader, time.Now)
	if err := p.serve(ctx, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "signal-peer:", err)
		os.Exit(1)
	}
}
