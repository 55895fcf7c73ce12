package main

import (
	"context"
	"log/slog"
	"testing"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"-port", "6000", "-v"})
	if err != nil || c.port != 6000 || !c.verbose {
		t.Fatalf("got %+v, %v", c, err)
	}
	for _, bad := range [][]string{{"-port", "70000"}, {"-port", "-1"}, {"extra"}, {"-nope"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestRunStops checks that run listens on loopback and returns once its
// context is cancelled.
func TestRunStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run(ctx, config{port: 0}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
}
