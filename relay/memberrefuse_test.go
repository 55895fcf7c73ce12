package relay

import (
	"bytes"
	"errors"
	"testing"

	"sotto/wire"
)

// TestStoredAccessKeyEpoch: the stored form keeps the key, the refusal of
// the member key and the epoch, reads values of before epochs, and an
// upload of a lower epoch is refused.
func TestStoredAccessKeyEpoch(t *testing.T) {
	k := bytes.Repeat([]byte{7}, wire.AccessKeySize)
	for _, c := range []struct {
		refuse bool
		epoch  uint64
		size   int
	}{{false, 0, wire.AccessKeySize}, {true, 0, wire.AccessKeySize + 1}, {false, 5, wire.AccessKeySize + 9}, {true, 1 << 40, wire.AccessKeySize + 9}} {
		st := storedAccessKey(k, c.refuse, c.epoch)
		key, refuse, epoch := splitAccessKey(st)
		if len(st) != c.size || !bytes.Equal(key, k) || (refuse == 1) != c.refuse || epoch != c.epoch {
			t.Fatalf("%+v: stored %d bytes, read %x %d %d", c, len(st), key, refuse, epoch)
		}
	}
	st := storedAccessKey(k, true, 4)
	if err := checkAccessKeyEpoch(st, 3); !errors.Is(err, ErrStaleAccessKey) || ErrorCode(err) != wire.ErrorCode_CONFLICT {
		t.Fatalf("an older epoch: %v", err)
	}
	if err := checkAccessKeyEpoch(st, 0); !errors.Is(err, ErrStaleAccessKey) {
		t.Fatalf("an upload without epoch over epoch 4: %v", err)
	}
	for _, e := range []uint64{4, 5} {
		if err := checkAccessKeyEpoch(st, e); err != nil {
			t.Fatalf("epoch %d: %v", e, err)
		}
	}
	if err := checkAccessKeyEpoch(storedAccessKey(k, true, 0), 0); err != nil {
		t.Fatalf("a value of before epochs: %v", err)
	}
}
