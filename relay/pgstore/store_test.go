package pgstore_test

import (
	"context"
	"testing"

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
