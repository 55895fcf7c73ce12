package pgstore_test

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"sotto/relay"
	"sotto/relay/pgstore"
	"sotto/relay/pgstore/pgtest"
	"sotto/relay/storetest"
	"sotto/wire"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		s, reopen := pgtest.Open(t)
		return s, func() relay.Store { return reopen() }
	})
}

// TestMigrationsIdempotent opens a schema twice: the second Open finds
// the schema at the current version and changes nothing.
func TestMigrationsIdempotent(t *testing.T) {
	s, reopen := pgtest.Open(t)
	ctx := context.Background()
	if err := s.SetOrgKey(ctx, []byte("key-1")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := reopen()
	defer s2.Close()
	var v int
	if err := s2.Pool().QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v < 1 {
		t.Fatalf("schema version %d", v)
	}
	if k, err := s2.OrgKey(ctx); err != nil || string(k) != "key-1" {
		t.Fatalf("org key after reopen: %q %v", k, err)
	}
}

func TestOrgDocuments(t *testing.T) {
	s, _ := pgtest.Open(t)
	defer s.Close()
	ctx := context.Background()
	if _, err := s.OrgKey(ctx); err != relay.ErrNotFound {
		t.Fatalf("no key yet: %v", err)
	}
	if _, err := s.OrgDocument(ctx, wire.OrgDocumentKind_ORG_POLICY, ""); err != relay.ErrNotFound {
		t.Fatalf("no document yet: %v", err)
	}
	for _, d := range []string{"v1", "v2"} {
		if err := s.PutOrgDocument(ctx, wire.OrgDocumentKind_ORG_POLICY, "", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutOrgDocument(ctx, wire.OrgDocumentKind_ORG_CERTIFICATE, "alice", []byte("cert")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.OrgDocument(ctx, wire.OrgDocumentKind_ORG_POLICY, ""); err != nil || string(b) != "v2" {
		t.Fatalf("latest policy: %q %v", b, err)
	}
	if b, err := s.OrgDocument(ctx, wire.OrgDocumentKind_ORG_CERTIFICATE, "alice"); err != nil || string(b) != "cert" {
		t.Fatalf("certificate: %q %v", b, err)
	}
}

func TestBadSchemaName(t *testing.T) {
	if _, err := pgstore.Open(context.Background(), pgtest.DefaultURL, pgstore.Options{Schema: "x; DROP TABLE y"}); err == nil {
		t.Fatal("accepted a bad schema name")
	}
}

// TestConcurrentDuplicateSends appends one send from many goroutines at
// once, so that copies land in one writer batch: exactly one is stored.
func TestConcurrentDuplicateSends(t *testing.T) {
	s, _ := pgtest.Open(t)
	defer s.Close()
	ctx := context.Background()
	var from, to relay.DeviceAddr
	from.Account[0], from.Device = 1, 1
	to.Account[0], to.Device = 2, 1
	const n = 50
	results := make(chan relay.AppendResult, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sd := &relay.Send{Sender: from, MessageID: []byte("same"), Timestamp: time.UnixMilli(int64(1000 + i)),
				Envelopes: []relay.Envelope{{Recipient: to, Sender: "a", SenderDevice: 1, Type: 1, Content: []byte("x"), MessageID: []byte("same")}}}
			rand.Read(sd.Envelopes[0].ID[8:])
			r, err := s.Append(ctx, sd)
			if err != nil {
				errs <- err
				return
			}
			results <- r
		}()
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fresh := 0
	var ts time.Time
	for r := range results {
		if !r.Duplicate {
			fresh++
			ts = r.Timestamp
		}
	}
	if fresh != 1 {
		t.Fatalf("%d sends stored, want 1", fresh)
	}
	envs, err := s.Fetch(ctx, to, 0, time.Time{}, 100)
	if err != nil || len(envs) != 1 || !envs[0].Timestamp.Equal(ts) {
		t.Fatalf("stored: %d envelopes %v", len(envs), err)
	}
}

// TestBatchIsOneTransaction checks what the mailbox writer relies on: a
// pgx batch runs as one implicit transaction, so a failing statement
// undoes the ones before it.
func TestBatchIsOneTransaction(t *testing.T) {
	s, _ := pgtest.Open(t)
	defer s.Close()
	ctx := context.Background()
	var b pgx.Batch
	b.Queue(`INSERT INTO org_key (id, key) VALUES (1, 'k')`)
	b.Queue(`INSERT INTO org_key (id, key) VALUES (2, 'k')`) // violates the CHECK
	if err := s.Pool().SendBatch(ctx, &b).Close(); err == nil {
		t.Fatal("bad batch accepted")
	}
	if _, err := s.OrgKey(ctx); err != relay.ErrNotFound {
		t.Fatalf("first statement of a failed batch kept: %v", err)
	}
}
