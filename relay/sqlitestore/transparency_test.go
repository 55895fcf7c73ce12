package sqlitestore_test

import (
	"context"
	"testing"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/relay/storetest"
)

func TestKeyLog(t *testing.T) {
	storetest.RunKeyLog(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		dir := t.TempDir()
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
