package sqlitestore_test

import (
	"context"
	"testing"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/relay/storetest"
)

func TestSealedConformance(t *testing.T) {
	dir := t.TempDir()
	storetest.RunSealed(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		open := func() relay.Store {
			s, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(), open
	})
}
