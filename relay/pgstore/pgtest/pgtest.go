// Package pgtest gives tests a PostgreSQL store in a fresh schema of
// their own, dropped at the end, so that parallel test runs sharing one
// server do not collide.
//
// The server is SOTTO_TEST_POSTGRES_URL, or by default the local one at
// postgres://postgres@127.0.0.1:5432/test. When it is unreachable the
// test is skipped, unless CI=true: then it fails, so that CI exercises
// the PostgreSQL backend.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	neturl "net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"sotto/internal/testneed"
	"sotto/relay/pgstore"
)

// DefaultURL is the local test server.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns the test server's URL after checking that it answers.
func URL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("SOTTO_TEST_POSTGRES_URL")
	if url == "" {
		url = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		shown := "(unparsable URL)"
		if u, perr := neturl.Parse(url); perr == nil {
			shown = u.Redacted()
		}
		testneed.Skip(t, "pgtest: PostgreSQL unreachable at %s (set SOTTO_TEST_POSTGRES_URL): %v", shown, err)
	}
	c.Close(ctx)
	return url
}

// Schema returns a new schema name, dropped (with everything in it) when
// the test ends.
func Schema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "sotto_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("pgtest: drop schema: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{name}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("pgtest: drop schema: %v", err)
		}
	})
	return name
}

// Open returns a store in a fresh schema and a function that opens the
// same schema again. The caller closes the stores; the schema is
// dropped at the end of the test.
func Open(t testing.TB) (*pgstore.Store, func() *pgstore.Store) {
	t.Helper()
	url := URL(t)
	schema := Schema(t, url)
	open := func() *pgstore.Store {
		s, err := pgstore.Open(context.Background(), url, pgstore.Options{Schema: schema, MaxConns: 8})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return open(), open
}
