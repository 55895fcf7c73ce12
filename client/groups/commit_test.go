package groups

import (
	"errors"
	"testing"

	"sotto/wire"
)

// A commit request over the relay's upload limit first loses its
// GroupInfo, then is refused with ErrTooLarge before anything is sent.
func TestFitHandshake(t *testing.T) {
	small := &wire.GroupCommitRequest{Commit: make([]byte, 1000), GroupInfo: make([]byte, wire.MaxFrameSize)}
	if err := fitHandshake(small); err != nil || len(small.GroupInfo) == 0 {
		t.Fatalf("a request larger than a frame (sent in parts): %v", err)
	}
	big := &wire.GroupCommitRequest{Commit: make([]byte, 1000), GroupInfo: make([]byte, maxHandshake)}
	if err := fitHandshake(big); err != nil || big.GroupInfo != nil {
		t.Fatalf("large group info: %v", err)
	}
	huge := &wire.GroupCommitRequest{Commit: make([]byte, 1000), Welcome: make([]byte, maxHandshake)}
	if err := fitHandshake(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large welcome: %v", err)
	}
}
