package pgstore_test

import (
	"context"
	"testing"

	"sotto/internal/testneed"
	"sotto/relay"
	"sotto/relay/pgstore/pgtest"
	"sotto/relay/storetest"
)

// TestListingOrderUnderICUCollation runs the listing-order conformance
// test on tables whose text columns collate like a database created with
// an ICU or glibc locale (en_US.UTF-8 is common): it weighs punctuation
// differently from SQLite's byte order, so pgstore must not depend on the
// database's collation.
func TestListingOrderUnderICUCollation(t *testing.T) {
	storetest.RunListingOrder(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		s, reopen := pgtest.Open(t)
		for _, q := range []string{
			`ALTER TABLE accounts ALTER COLUMN username TYPE text COLLATE "und-x-icu"`,
			`ALTER TABLE codes ALTER COLUMN id TYPE text COLLATE "und-x-icu"`,
		} {
			if _, err := s.Pool().Exec(context.Background(), q); err != nil {
				s.Close()
				testneed.Skip(t, "this PostgreSQL has no ICU collation: %v", err)
			}
		}
		return s, func() relay.Store { return reopen() }
	})
}
