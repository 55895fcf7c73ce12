package pgstore_test

import (
	"testing"

	"sotto/relay"
	"sotto/relay/pgstore/pgtest"
	"sotto/relay/storetest"
)

func TestSealedConformance(t *testing.T) {
	storetest.RunSealed(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		s, reopen := pgtest.Open(t)
		return s, func() relay.Store { return reopen() }
	})
}
