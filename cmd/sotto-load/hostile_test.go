package main

import (
	"context"
	"strings"
	"testing"
)

// TestHostileAgainstRealRelay: the hostile mode reports the per-address
// cap of a real relay, and that a normal client is served during and
// after the attack.
func TestHostileAgainstRealRelay(t *testing.T) {
	url, _ := startRelay(t)
	var out strings.Builder
	args := []string{"hostile", "-relay", strings.TrimSuffix(url, "/v1/ws"), "-conns", "40", "-addrs", "1", "-hold", "0s", "-mid-frame"}
	if rc := run(context.Background(), args, &out, &out); rc != 0 {
		t.Fatalf("exit %d:\n%s", rc, out.String())
	}
	for _, want := range []string{"HTTP 429:8", "accepted:32", "during the attack: served", "after the attacker left: served", "this side holds 32 connections (mid-frame)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if rc := run(context.Background(), []string{"hostile", "-relay", "ws://192.0.2.1:80"}, &out, &out); rc != 2 || !strings.Contains(out.String(), "loopback only") {
		t.Fatalf("a non-loopback relay: exit %d\n%s", rc, out.String())
	}
}
