package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"sotto/relay"
	"sotto/wire"
)

// OrgStore is what a backend implements to keep the organization's
// public key and its latest documents (relay/org.go).
type OrgStore interface {
	relay.OrgKeyStore
	relay.OrgDocumentStore
}

// RunOrg checks the OrgKeyStore and OrgDocumentStore semantics. The
// relay works without them (it then keeps no documents for devices that
// missed a fan-out), so a store that implements neither skips; one that
// implements only one of them fails.
func RunOrg(t *testing.T, open Open) {
	ctx := context.Background()
	probe, _ := open(t)
	_, isKey := probe.(relay.OrgKeyStore)
	_, isDoc := probe.(relay.OrgDocumentStore)
	probe.Close()
	switch {
	case !isKey && !isDoc:
		t.Skip("store keeps no organization key or documents")
	case !isKey || !isDoc:
		t.Fatalf("store implements OrgKeyStore=%v OrgDocumentStore=%v: both or neither", isKey, isDoc)
	}
	openOrg := func(t *testing.T) (relay.Store, OrgStore, func() relay.Store) {
		s, reopen := open(t)
		return s, s.(OrgStore), reopen
	}
	policy, cert, notice := wire.OrgDocumentKind_ORG_POLICY, wire.OrgDocumentKind_ORG_CERTIFICATE, wire.OrgDocumentKind_ORG_NOTICE

	t.Run("Empty", func(t *testing.T) {
		s, o, _ := openOrg(t)
		defer s.Close()
		if k, err := o.OrgKey(ctx); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("org key of an empty store: %q %v, want ErrNotFound", k, err)
		}
		if d, err := o.OrgDocument(ctx, policy, ""); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("policy of an empty store: %q %v, want ErrNotFound", d, err)
		}
	})

	t.Run("KeyReplacedAndDurable", func(t *testing.T) {
		s, o, reopen := openOrg(t)
		for _, k := range [][]byte{bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)} {
			if err := o.SetOrgKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		got, err := o.OrgKey(ctx)
		if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{2}, 32)) {
			t.Fatalf("org key: %x %v, want the last one set", got, err)
		}
		got[0] ^= 0xff // the caller owns what it gets
		if again, _ := o.OrgKey(ctx); again[0] != 2 {
			t.Fatal("changing a returned key changed the stored one")
		}
		if reopen == nil {
			s.Close()
			return
		}
		s.Close()
		s2 := reopen()
		defer s2.Close()
		if got, err := s2.(OrgStore).OrgKey(ctx); err != nil || !bytes.Equal(got, bytes.Repeat([]byte{2}, 32)) {
			t.Fatalf("org key after reopen: %x %v", got, err)
		}
	})

	t.Run("LatestPerKindAndSubject", func(t *testing.T) {
		s, o, reopen := openOrg(t)
		put := func(kind wire.OrgDocumentKind, subject, doc string) {
			t.Helper()
			if err := o.PutOrgDocument(ctx, kind, subject, []byte(doc)); err != nil {
				t.Fatal(err)
			}
		}
		put(policy, "", "policy v1")
		put(policy, "", "policy v2")
		put(cert, "alice", "alice v1")
		put(cert, "bob", "bob v1")
		put(cert, "alice", "alice v2")
		put(notice, "alice", "a notice about alice")
		want := []struct {
			kind    wire.OrgDocumentKind
			subject string
			doc     string
		}{
			{policy, "", "policy v2"},
			{cert, "alice", "alice v2"},
			{cert, "bob", "bob v1"},
			{notice, "alice", "a notice about alice"},
		}
		check := func(o OrgStore) {
			t.Helper()
			for _, w := range want {
				if got, err := o.OrgDocument(ctx, w.kind, w.subject); err != nil || string(got) != w.doc {
					t.Fatalf("%v %q: %q %v, want %q", w.kind, w.subject, got, err, w.doc)
				}
			}
			// Subjects are exact: the relay normalizes usernames before.
			for _, miss := range []struct {
				kind    wire.OrgDocumentKind
				subject string
			}{{cert, "Alice"}, {cert, "alice "}, {cert, ""}, {policy, "alice"}, {notice, ""}, {wire.OrgDocumentKind_ORG_WIPE, "alice"}} {
				if got, err := o.OrgDocument(ctx, miss.kind, miss.subject); !errors.Is(err, relay.ErrNotFound) {
					t.Fatalf("%v %q: %q %v, want ErrNotFound", miss.kind, miss.subject, got, err)
				}
			}
		}
		check(o)
		s.Close()
		if reopen != nil {
			s2 := reopen()
			defer s2.Close()
			check(s2.(OrgStore))
		}
	})

	t.Run("BinaryDocuments", func(t *testing.T) {
		s, o, _ := openOrg(t)
		defer s.Close()
		// Encoded protobufs: every byte value, NULs included, and the
		// largest document the relay accepts plus its signature.
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		big := bytes.Repeat(all, (16<<10+256)/256)
		for _, doc := range [][]byte{all, big, {0}} {
			if err := o.PutOrgDocument(ctx, policy, "", doc); err != nil {
				t.Fatal(err)
			}
			got, err := o.OrgDocument(ctx, policy, "")
			if err != nil || !bytes.Equal(got, doc) {
				t.Fatalf("document of %d bytes came back as %d bytes (%v)", len(doc), len(got), err)
			}
			got[0] ^= 0xff
			if again, _ := o.OrgDocument(ctx, policy, ""); !bytes.Equal(again, doc) {
				t.Fatal("changing a returned document changed the stored one")
			}
		}
	})

	t.Run("EmptyValues", func(t *testing.T) {
		// The relay never stores an empty key or document, but a nil or
		// empty value must read back as empty, not as missing, on every
		// backend alike.
		s, o, _ := openOrg(t)
		defer s.Close()
		for _, v := range [][]byte{nil, {}} {
			if err := o.SetOrgKey(ctx, v); err != nil {
				t.Fatalf("set empty org key: %v", err)
			}
			if k, err := o.OrgKey(ctx); err != nil || len(k) != 0 {
				t.Fatalf("empty org key: %x %v", k, err)
			}
			if err := o.PutOrgDocument(ctx, cert, "carol", v); err != nil {
				t.Fatalf("put empty document: %v", err)
			}
			if d, err := o.OrgDocument(ctx, cert, "carol"); err != nil || len(d) != 0 {
				t.Fatalf("empty document: %x %v", d, err)
			}
		}
	})

	t.Run("EnrollBindsOrg", func(t *testing.T) { runEnrollBindsOrg(t, openOrg) })

	t.Run("ConcurrentPuts", func(t *testing.T) {
		s, o, _ := openOrg(t)
		defer s.Close()
		docs := map[string]bool{}
		var wg sync.WaitGroup
		errs := make(chan error, 32)
		for i := range 32 {
			doc := string(rune('a'+i%26)) + "-policy"
			docs[doc] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- o.PutOrgDocument(ctx, policy, "", []byte(doc))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got, err := o.OrgDocument(ctx, policy, ""); err != nil || !docs[string(got)] {
			t.Fatalf("after concurrent puts: %q %v, want one of the documents put", got, err)
		}
	})
}

// runEnrollBindsOrg checks that Enroll keeps NewAccount.Certificate as
// the account's RELAY_IDENTITY_CERTIFICATE document and registers
// NewAccount.OrgKey (the bootstrap enrollment) in its own transaction:
// an org key when one is registered already is ErrConflict and leaves no
// account, seat, certificate or key behind; a failed enrollment keeps no
// certificate.
func runEnrollBindsOrg(t *testing.T, openOrg func(t *testing.T) (relay.Store, OrgStore, func() relay.Store)) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	s, o, reopen := openOrg(t)
	idCert := wire.OrgDocumentKind_RELAY_IDENTITY_CERTIFICATE
	first, second := bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{8}, 32)
	code(t, s, "org-seats", 5, t0.Add(24*time.Hour))
	enroll := func(username string, id byte, cert, orgKey []byte) error {
		a := newAccount("org-seats", username, id, 0)
		a.Certificate, a.OrgKey = cert, orgKey
		_, _, err := s.Enroll(ctx, a, now)
		return err
	}
	if err := enroll("admin", 1, []byte("admin's certificate"), first); err != nil {
		t.Fatalf("bootstrap enrollment: %v", err)
	}
	if err := enroll("mallory", 2, []byte("mallory's certificate"), second); !errors.Is(err, relay.ErrConflict) {
		t.Fatalf("a second org key: %v, want ErrConflict", err)
	}
	if _, err := s.AccountByName(ctx, "mallory"); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("the refused bootstrap left an account: %v", err)
	}
	if d, err := o.OrgDocument(ctx, idCert, "mallory"); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("the refused bootstrap left a certificate: %q %v", d, err)
	}
	if err := enroll("alice", 3, []byte("alice's certificate"), nil); err != nil {
		t.Fatal(err)
	}
	// The duplicate name fails the enrollment: alice's certificate stays.
	if err := enroll("alice", 4, []byte("another certificate"), nil); !errors.Is(err, relay.ErrConflict) {
		t.Fatalf("duplicate username: %v", err)
	}
	if err := enroll("bob", 5, nil, nil); err != nil {
		t.Fatal(err)
	}
	check := func(s relay.Store) {
		t.Helper()
		o := s.(OrgStore)
		if k, err := o.OrgKey(ctx); err != nil || !bytes.Equal(k, first) {
			t.Fatalf("org key: %x %v, want the bootstrap's", k, err)
		}
		for user, want := range map[string]string{"admin": "admin's certificate", "alice": "alice's certificate"} {
			if d, err := o.OrgDocument(ctx, idCert, user); err != nil || string(d) != want {
				t.Fatalf("certificate of %s: %q %v, want %q", user, d, err, want)
			}
		}
		if d, err := o.OrgDocument(ctx, idCert, "bob"); !errors.Is(err, relay.ErrNotFound) {
			t.Fatalf("certificate of an account enrolled without one: %q %v", d, err)
		}
		codes, err := s.Codes(ctx)
		if err != nil || len(codes) != 1 || codes[0].Used != 3 {
			t.Fatalf("seats used: %+v %v, want 3 (refused enrollments use none)", codes, err)
		}
	}
	check(s)
	s.Close()
	if reopen != nil {
		s2 := reopen()
		defer s2.Close()
		check(s2)
	}
}

// AccountExpiryStore is implemented by directories whose operator can
// move the end of an account's subscription (`sottod admin accounts
// extend/suspend`).
type AccountExpiryStore interface {
	SetAccountExpiry(ctx context.Context, id relay.AccountID, expires time.Time) error
}

// RunAccountExpiry checks SetAccountExpiry; a store without it skips.
func RunAccountExpiry(t *testing.T, open Open) {
	ctx := context.Background()
	s, reopen := open(t)
	x, ok := s.(AccountExpiryStore)
	if !ok {
		s.Close()
		t.Skip("store has no SetAccountExpiry")
	}
	code(t, s, "expiry", 2, t0.Add(24*time.Hour))
	acct, _, err := s.Enroll(ctx, newAccount("expiry", "alice", 1, 0), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := s.Enroll(ctx, newAccount("expiry", "bob", 2, 0), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	extended := t0.Add(90 * 24 * time.Hour)
	if err := x.SetAccountExpiry(ctx, acct.ID, extended); err != nil {
		t.Fatal(err)
	}
	check := func(s relay.Store) {
		t.Helper()
		if a, err := s.AccountByID(ctx, acct.ID); err != nil || !a.Expires.Equal(extended) {
			t.Fatalf("extended account: expires %v %v, want %v", a.Expires, err, extended)
		}
		if a, err := s.AccountByName(ctx, "alice"); err != nil || !a.Expires.Equal(extended) {
			t.Fatalf("extended account by name: expires %v %v", a.Expires, err)
		}
		if b, err := s.AccountByID(ctx, other.ID); err != nil || !b.Expires.Equal(other.Expires) {
			t.Fatalf("the other account moved: %v %v", b.Expires, err)
		}
	}
	check(s)
	// Suspending: an expiry in the past.
	if err := x.SetAccountExpiry(ctx, other.ID, t0); err != nil {
		t.Fatal(err)
	}
	if b, err := s.AccountByID(ctx, other.ID); err != nil || !b.Expires.Equal(t0) {
		t.Fatalf("suspended account: %v %v", b.Expires, err)
	}
	other.Expires = t0
	var unknown relay.AccountID
	unknown[0] = 99
	if err := x.SetAccountExpiry(ctx, unknown, extended); !errors.Is(err, relay.ErrNotFound) {
		t.Fatalf("unknown account: %v, want ErrNotFound", err)
	}
	s.Close()
	if reopen != nil {
		s2 := reopen()
		defer s2.Close()
		check(s2)
	}
}
