package pgstore_test

import (
	"testing"

	"sotto/relay"
	"sotto/relay/pgstore/pgtest"
	"sotto/relay/storetest"
)

func TestKeyLog(t *testing.T) {
	storetest.RunKeyLog(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		s, reopen := pgtest.Open(t)
		return s, func() relay.Store { return reopen() }
	})
}
