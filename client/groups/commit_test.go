package groups

import (
	"errors"
	"testing"

	"sotto/wire"
)

// A commit request over the frame limit first loses its GroupInfo, then
// is refused with ErrTooLarge instead of breaking the connection.
func TestFitFrame(t *testing.T) {
	small := &wire.GroupCommitRequest{Commit: make([]byte, 1000), GroupInfo: make([]byte, 1000)}
	if err := fitFrame(small); err != nil || len(small.GroupInfo) == 0 {
		t.Fatalf("small request: %v", err)
	}
	big := &wire.GroupCommitRequest{Commit: make([]byte, 1000), GroupInfo: make([]byte, wire.MaxFrameSize)}
	if err := fitFrame(big); err != nil || big.GroupInfo != nil {
		t.Fatalf("large group info: %v", err)
	}
	huge := &wire.GroupCommitRequest{Commit: make([]byte, 1000), Welcome: make([]byte, wire.MaxFrameSize)}
	if err := fitFrame(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large welcome: %v", err)
	}
}
