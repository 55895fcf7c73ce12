package orgtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"sotto/orgcert"
	"sotto/relay/sqlitestore"
)

// TestInviteAllBatches registers more invitations than one batch holds:
// every seat is registered once, with a distinct code, and certifies
// identity keys that verify against the org key.
func TestInviteAllBatches(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	o := New("Batch Org")
	if err := o.Register(ctx, st); err != nil {
		t.Fatal(err)
	}
	names := make([]string, MaxBatch+1)
	for i := range names {
		names[i] = fmt.Sprint("user-", i)
	}
	now := time.Now()
	seats, err := o.InviteAll(ctx, st, names, now.Add(time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := st.Codes(ctx)
	if err != nil || len(codes) != len(names) || len(seats) != len(names) {
		t.Fatalf("%d seats, %d registered (%v), want %d", len(seats), len(codes), err, len(names))
	}
	seen := map[string]bool{}
	for i, s := range seats {
		if s.Username != names[i] || seen[s.Code] {
			t.Fatalf("seat %d: %s, code seen before %v", i, s.Username, seen[s.Code])
		}
		seen[s.Code] = true
	}
	ik := []byte("identity key")
	last := seats[len(seats)-1]
	if _, err := orgcert.Verify(o.Public(), last.Certify(ik), last.Username, ik); err != nil {
		t.Fatal(err)
	}
	// A batch the relay refuses is an error (here: a name not normalized).
	if _, err := o.InviteAll(ctx, st, []string{"Not Normalized"}, now.Add(time.Hour), now); err == nil {
		t.Fatal("an invalid grant was registered")
	}
}
