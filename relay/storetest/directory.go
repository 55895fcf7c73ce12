package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"sotto/relay"
)

func code(t *testing.T, s relay.Directory, secret string, seats int, expires time.Time) relay.Code {
	t.Helper()
	c := relay.Code{ID: "id-" + secret, Hash: codeHash(secret), Seats: seats, Created: t0, Expires: expires}
	if err := s.CreateCode(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// codeHash is the stored form of a test code (the relay hashes seat
// tokens; the store only compares hashes).
func codeHash(secret string) [32]byte { return sha256.Sum256([]byte("storetest code\x00" + secret)) }

func keys(n int) relay.PreKeys {
	k := relay.PreKeys{
		SignedPreKey:    &relay.SignedPreKey{ID: 1, PublicKey: []byte("spk"), Signature: []byte("sig")},
		LastResortKyber: &relay.SignedPreKey{ID: 2, PublicKey: []byte("kyber-last"), Signature: []byte("sig")},
	}
	for i := range n {
		k.OneTime = append(k.OneTime, relay.SignedPreKey{ID: uint32(100 + i), PublicKey: []byte(fmt.Sprint("ec", i))})
		k.OneTimeKyber = append(k.OneTimeKyber, relay.SignedPreKey{ID: uint32(200 + i), PublicKey: []byte(fmt.Sprint("kyber", i)), Signature: []byte("sig")})
	}
	return k
}

func newAccount(secret, username string, id byte, n int) relay.NewAccount {
	var a relay.AccountID
	a[0] = id
	return relay.NewAccount{
		CodeHash: codeHash(secret), ID: a, Username: username, IdentityKey: []byte("identity-" + username),
		Device:  relay.Device{DeviceKey: []byte("device-key"), RegistrationID: 7, Name: "laptop"},
		PreKeys: keys(n),
	}
}

// RunDirectory checks the Directory semantics.
func RunDirectory(t *testing.T, open Open) {
	ctx := context.Background()
	now := t0.Add(time.Hour)

	t.Run("EnrollSeats", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		code(t, s, "two-seats", 2, t0.Add(24*time.Hour))
		acct, dev, err := s.Enroll(ctx, newAccount("two-seats", "alice", 1, 0), now)
		if err != nil {
			t.Fatal(err)
		}
		if dev.Addr.Device != 1 || dev.Addr.Account != acct.ID || !acct.Expires.Equal(t0.Add(24*time.Hour)) {
			t.Fatalf("enroll: %+v %+v", acct, dev)
		}
		if _, _, err := s.Enroll(ctx, newAccount("two-seats", "alice", 2, 0), now); !errors.Is(err, relay.ErrConflict) {
			t.Fatalf("duplicate username: %v", err)
		}
		if _, _, err := s.Enroll(ctx, newAccount("two-seats", "bob", 3, 0), now); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Enroll(ctx, newAccount("two-seats", "carol", 4, 0), now); !errors.Is(err, relay.ErrBadCode) {
			t.Fatalf("third seat: %v", err)
		}
		if _, _, err := s.Enroll(ctx, newAccount("unknown", "dave", 5, 0), now); !errors.Is(err, relay.ErrBadCode) {
			t.Fatalf("unknown code: %v", err)
		}
		code(t, s, "expired", 5, t0.Add(time.Minute))
		if _, _, err := s.Enroll(ctx, newAccount("expired", "erin", 6, 0), now); !errors.Is(err, relay.ErrBadCode) {
			t.Fatalf("expired code: %v", err)
		}
		code(t, s, "revoked", 5, t0.Add(24*time.Hour))
		if err := s.RevokeCode(ctx, "id-revoked"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Enroll(ctx, newAccount("revoked", "frank", 7, 0), now); !errors.Is(err, relay.ErrBadCode) {
			t.Fatalf("revoked code: %v", err)
		}
		codes, err := s.Codes(ctx)
		if err != nil || len(codes) != 3 {
			t.Fatalf("codes: %+v %v", codes, err)
		}
		for _, c := range codes {
			if want := map[string]int{"id-two-seats": 2}[c.ID]; c.Used != want || c.Revoked != (c.ID == "id-revoked") {
				t.Fatalf("code %s: used %d revoked %v", c.ID, c.Used, c.Revoked)
			}
		}
		got, err := s.AccountByName(ctx, "alice")
		if err != nil || got.ID != acct.ID || string(got.IdentityKey) != "identity-alice" {
			t.Fatalf("by name: %+v %v", got, err)
		}
		if _, err := s.AccountByName(ctx, "nobody"); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("missing account: %v", err)
		}
		u, err := s.Usage(ctx)
		if err != nil || u.Accounts != 2 || u.SeatsUsed != 2 || u.SeatsTotal != 12 {
			t.Fatalf("usage: %+v %v", u, err)
		}
	})

	t.Run("ConcurrentEnrollLastSeat", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		code(t, s, "one-seat", 1, t0.Add(24*time.Hour))
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := s.Enroll(ctx, newAccount("one-seat", fmt.Sprint("user", i), byte(10+i), 0), now)
				if err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if ok != 1 {
			t.Fatalf("%d enrollments used one seat", ok)
		}
	})

	t.Run("LinkDevice", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		code(t, s, "c", 1, t0.Add(24*time.Hour))
		acct, _, err := s.Enroll(ctx, newAccount("c", "alice", 1, 0), now)
		if err != nil {
			t.Fatal(err)
		}
		tok := [32]byte{1}
		if err := s.CreateLinkToken(ctx, acct.ID, tok, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		d := relay.Device{DeviceKey: []byte("k2"), RegistrationID: 9, Name: "phone"}
		if _, _, err := s.LinkDevice(ctx, tok, []byte("wrong identity"), d, keys(1), 6, now); err == nil {
			t.Fatal("linked with another identity key")
		}
		// The failed attempt rolled back: the token is still usable once.
		_, dev, err := s.LinkDevice(ctx, tok, acct.IdentityKey, d, keys(1), 6, now)
		if err != nil || dev.Addr.Device != 2 || dev.Addr.Account != acct.ID {
			t.Fatalf("link: %+v %v", dev, err)
		}
		if _, _, err := s.LinkDevice(ctx, tok, acct.IdentityKey, d, keys(1), 6, now); !errors.Is(err, relay.ErrBadToken) {
			t.Fatalf("token reuse: %v", err)
		}
		tok2 := [32]byte{2}
		s.CreateLinkToken(ctx, acct.ID, tok2, now.Add(time.Minute))
		if _, _, err := s.LinkDevice(ctx, tok2, acct.IdentityKey, d, keys(1), 2, now); !errors.Is(err, relay.ErrTooManyDevices) {
			t.Fatalf("device cap: %v", err)
		}
		tok3 := [32]byte{3}
		s.CreateLinkToken(ctx, acct.ID, tok3, now.Add(time.Minute))
		if _, _, err := s.LinkDevice(ctx, tok3, acct.IdentityKey, d, keys(1), 6, now.Add(time.Hour)); !errors.Is(err, relay.ErrBadToken) {
			t.Fatalf("expired token: %v", err)
		}
		devs, err := s.Devices(ctx, acct.ID, false)
		if err != nil || len(devs) != 2 || devs[1].Name != "phone" {
			t.Fatalf("devices: %+v %v", devs, err)
		}

		// Revoking device 2: it disappears from the active list, its
		// queue and keys go, and the revocation log records it.
		s.Append(ctx, newSend(addr(9, 1), "m", now, dev.Addr))
		if err := s.Revoke(ctx, dev.Addr, now); err != nil {
			t.Fatal(err)
		}
		if devs, _ := s.Devices(ctx, acct.ID, false); len(devs) != 1 {
			t.Fatalf("after revoke: %d devices", len(devs))
		}
		if d, err := s.Device(ctx, dev.Addr); err != nil || !d.Revoked {
			t.Fatalf("revoked device: %+v %v", d, err)
		}
		if n := len(fetchAll(t, s, dev.Addr)); n != 0 {
			t.Fatalf("revoked device still has %d envelopes", n)
		}
		if _, err := s.TakeBundle(ctx, dev.Addr); err == nil {
			t.Fatal("bundle of a revoked device")
		}
		// A revoked device id is never reused.
		tok4 := [32]byte{4}
		s.CreateLinkToken(ctx, acct.ID, tok4, now.Add(time.Minute))
		if _, d3, err := s.LinkDevice(ctx, tok4, acct.IdentityKey, d, keys(1), 6, now); err != nil || d3.Addr.Device != 3 {
			t.Fatalf("relink: %+v %v", d3, err)
		}
		if err := s.Revoke(ctx, relay.DeviceAddr{Account: acct.ID}, now); err != nil {
			t.Fatal(err)
		}
		if a, _ := s.AccountByID(ctx, acct.ID); !a.Revoked {
			t.Fatal("account not revoked")
		}
		revs, err := s.RevocationsSince(ctx, 0)
		if err != nil || len(revs) != 2 || revs[0].Addr != dev.Addr || revs[1].Addr.Device != 0 {
			t.Fatalf("revocations: %+v %v", revs, err)
		}
		if more, _ := s.RevocationsSince(ctx, revs[1].Seq); len(more) != 0 {
			t.Fatal("revocations since the last one")
		}
	})

	t.Run("PreKeysHandedOutOnce", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		code(t, s, "c", 1, t0.Add(24*time.Hour))
		const n = 20
		_, dev, err := s.Enroll(ctx, newAccount("c", "alice", 1, n), now)
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.CountPreKeys(ctx, dev.Addr)
		if err != nil || c.OneTime != n || c.OneTimeKyber != n || !c.HasSignedPreKey || !c.HasLastResort {
			t.Fatalf("count: %+v %v", c, err)
		}
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			ec      = map[uint32]int{}
			kyber   = map[uint32]int{}
			lastRes int
		)
		for range n + 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := s.TakeBundle(ctx, dev.Addr)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if b.OneTime != nil {
					ec[b.OneTime.ID]++
				}
				if b.KyberLastResort {
					lastRes++
					if b.Kyber.ID != 2 || b.OneTime != nil {
						t.Error("last resort bundle wrong")
					}
				} else {
					kyber[b.Kyber.ID]++
				}
			}()
		}
		wg.Wait()
		if len(ec) != n || len(kyber) != n || lastRes != 5 {
			t.Fatalf("handed out %d EC, %d Kyber, %d last-resort", len(ec), len(kyber), lastRes)
		}
		for id, k := range ec {
			if k != 1 {
				t.Fatalf("EC prekey %d handed out %d times", id, k)
			}
		}
		for id, k := range kyber {
			if k != 1 {
				t.Fatalf("Kyber prekey %d handed out %d times", id, k)
			}
		}
		// Upload more: they are handed out again.
		more := relay.PreKeys{OneTime: []relay.SignedPreKey{{ID: 500, PublicKey: []byte("x")}}}
		if err := s.StorePreKeys(ctx, dev.Addr, more); err != nil {
			t.Fatal(err)
		}
		if b, err := s.TakeBundle(ctx, dev.Addr); err != nil || b.OneTime == nil || b.OneTime.ID != 500 || !b.KyberLastResort {
			t.Fatalf("after upload: %+v %v", b, err)
		}
	})

	t.Run("NoSignedPreKey", func(t *testing.T) {
		s, _ := open(t)
		defer s.Close()
		code(t, s, "c", 1, t0.Add(24*time.Hour))
		a := newAccount("c", "alice", 1, 0)
		a.PreKeys = relay.PreKeys{}
		_, dev, err := s.Enroll(ctx, a, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeBundle(ctx, dev.Addr); !errors.Is(err, relay.ErrPreKeys) {
			t.Fatalf("no prekeys: %v", err)
		}
		if _, err := s.TakeBundle(ctx, addr(99, 1)); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("unknown device: %v", err)
		}
	})
}

// RunListingOrder checks the order of the admin listings: Accounts by
// username and Codes by creation time then id, both byte-wise, whatever
// collation the database would apply to text.
func RunListingOrder(t *testing.T, open Open) {
	ctx := context.Background()
	s, _ := open(t)
	defer s.Close()
	// Usernames allow [a-z0-9._-]: collations that weigh punctuation
	// differently order these differently.
	names := []string{"ab", "a_c", "a.d", "a-b", "aa", "a0", "b"}
	code(t, s, "order", len(names), t0.Add(24*time.Hour))
	for i, n := range names {
		if _, _, err := s.Enroll(ctx, newAccount("order", n, byte(10+i), 0), t0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	accts, err := s.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range accts {
		got = append(got, a.Username)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Accounts order %q, want byte-wise %q", got, want)
	}
	// Codes created at the same time: by id, byte-wise.
	ids := []string{"x_1", "x-1", "x.1", "x1", "xa"}
	for i, id := range ids {
		c := relay.Code{ID: id, Hash: codeHash(fmt.Sprint("ordersecret", i)), Seats: 1, Created: t0.Add(time.Minute), Expires: t0.Add(time.Hour)}
		if err := s.CreateCode(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	codes, err := s.Codes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, c := range codes {
		got = append(got, c.ID)
	}
	want = append([]string{"id-order"}, ids...) // created earlier
	slices.Sort(want[1:])
	if !slices.Equal(got, want) {
		t.Fatalf("Codes order %q, want %q", got, want)
	}
}

// RunWideValues checks that every uint32 a client chooses (registration
// id, prekey ids) is stored whole, up to the largest.
func RunWideValues(t *testing.T, open Open) {
	ctx := context.Background()
	s, _ := open(t)
	defer s.Close()
	code(t, s, "wide", 1, t0.Add(24*time.Hour))
	const top = ^uint32(0)
	a := newAccount("wide", "alice", 1, 0)
	a.Device.RegistrationID = top
	a.PreKeys.SignedPreKey.ID = top
	a.PreKeys.LastResortKyber.ID = top - 1
	a.PreKeys.OneTime = []relay.SignedPreKey{{ID: top, PublicKey: []byte("ec-top")}}
	a.PreKeys.OneTimeKyber = []relay.SignedPreKey{{ID: top - 2, PublicKey: []byte("kyber-top"), Signature: []byte("sig")}}
	_, dev, err := s.Enroll(ctx, a, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := s.Device(ctx, dev.Addr); err != nil || d.RegistrationID != top {
		t.Fatalf("registration id: %d %v", d.RegistrationID, err)
	}
	b, err := s.TakeBundle(ctx, dev.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if b.Device.RegistrationID != top || b.SignedPreKey == nil || b.SignedPreKey.ID != top ||
		b.OneTime == nil || b.OneTime.ID != top || b.Kyber == nil || b.Kyber.ID != top-2 || b.KyberLastResort {
		t.Fatalf("bundle: %+v", b)
	}
	if b, err = s.TakeBundle(ctx, dev.Addr); err != nil || b.Kyber == nil || b.Kyber.ID != top-1 || !b.KyberLastResort {
		t.Fatalf("last resort: %+v %v", b, err)
	}
}
