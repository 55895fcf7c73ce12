package account

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"sotto/client/store"
	"sotto/wire"
)

// TestRecordRoundTrip: the record is saved and read back whole from a
// real store, and a store without one says ErrNotEnrolled.
func TestRecordRoundTrip(t *testing.T) {
	ctx := context.Background()
	db, err := store.Create(ctx, filepath.Join(t.TempDir(), "s"), []byte("pw"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Load(ctx, db); !errors.Is(err, ErrNotEnrolled) {
		t.Fatalf("empty store: %v", err)
	}
	a := &Account{Relay: "wss://r", Username: "alice", DeviceID: 2, RelayPin: []byte{7}}
	if err := NewDeviceKeys(a); err != nil {
		t.Fatal(err)
	}
	if a.RegistrationID == 0 || a.RegistrationID > 16380 || len(a.DeviceKey) != 32 || a.NextPreKeyID != 1 {
		t.Fatalf("new device keys: reg %d, key %d bytes, next %d", a.RegistrationID, len(a.DeviceKey), a.NextPreKeyID)
	}
	if err := Save(ctx, db, a); err != nil {
		t.Fatal(err)
	}
	got, err := Load(ctx, db)
	if err != nil || got.Username != "alice" || got.DeviceID != 2 || !bytes.Equal(got.DeviceKey, a.DeviceKey) || !bytes.Equal(got.RelayPin, []byte{7}) {
		t.Fatalf("read back %v: %v", got, err)
	}
	if !got.PrivateDeviceKey().Equal(a.PrivateDeviceKey()) {
		t.Fatal("device key changed on the way")
	}
}

// TestRecordNeverPrinted: formatting the record shows no secret.
func TestRecordNeverPrinted(t *testing.T) {
	a := &Account{Username: "alice", DeviceID: 1, DeviceKey: bytes.Repeat([]byte{0xAB}, 32), Identity: bytes.Repeat([]byte{0xCD}, 40)}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(f, a)
		if bytes.Contains([]byte(out), []byte("171")) || bytes.Contains([]byte(out), []byte("ab")) || bytes.Contains([]byte(out), []byte("205")) {
			t.Errorf("%s shows a secret: %s", f, out)
		}
	}
}

// TestPlan: what a refill makes for what the relay holds.
func TestPlan(t *testing.T) {
	now := time.Now()
	fresh := &Account{SignedPreKeyAt: now.Add(-time.Hour).UnixMilli()}
	full := &wire.PreKeyCountResponse{OneTimePrekeys: ReplenishBelow, OneTimeKyberPrekeys: ReplenishBelow / 2, HasSignedPrekey: true, HasLastResortKyber: true}
	if ec, ky, rot := Plan(full, fresh, now); ec != 0 || ky != 0 || rot {
		t.Fatalf("a stocked relay: %d %d %v", ec, ky, rot)
	}
	low := &wire.PreKeyCountResponse{OneTimePrekeys: ReplenishBelow - 1, OneTimeKyberPrekeys: ReplenishBelow/2 - 1, HasSignedPrekey: true, HasLastResortKyber: true}
	if ec, ky, rot := Plan(low, fresh, now); ec != InitialPreKeys || ky != InitialKyberPreKeys || rot {
		t.Fatalf("a low relay: %d %d %v", ec, ky, rot)
	}
	old := &Account{SignedPreKeyAt: now.Add(-RotateAfter - time.Minute).UnixMilli()}
	if _, _, rot := Plan(full, old, now); !rot {
		t.Fatal("a signed prekey older than RotateAfter is kept")
	}
	if _, _, rot := Plan(&wire.PreKeyCountResponse{OneTimePrekeys: 50, OneTimeKyberPrekeys: 50, HasLastResortKyber: true}, fresh, now); !rot {
		t.Fatal("a relay without a signed prekey gets none")
	}
}

// TestNextIDWraps: prekey ids stay within Signal's 24 bits and never 0.
func TestNextIDWraps(t *testing.T) {
	if NextID(1) != 2 || NextID(maxPreKeyID-1) != maxPreKeyID || NextID(maxPreKeyID) != 1 {
		t.Fatal("prekey ids do not wrap to 1 at 24 bits")
	}
}
