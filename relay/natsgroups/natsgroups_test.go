package natsgroups_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sotto/relay"
	"sotto/relay/natsbus/natstest"
	"sotto/relay/natsgroups"
	"sotto/relay/storetest"
)

// groupsOnly is a relay.Store that is a relay.GroupStore: RunGroups uses
// only the group store.
type groupsOnly struct {
	relay.Directory
	relay.Mailbox
	*natsgroups.Store
}

func (g groupsOnly) Close() error { return g.Store.Close() }

// testOptions names a fresh bucket and stream, deleted when t ends.
func testOptions(t testing.TB, nc *nats.Conn) natsgroups.Options {
	var b [6]byte
	rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	opts := natsgroups.Options{Bucket: "sotto_gtest_" + id, Stream: "SOTTO_GTEST_" + id, Subjects: "sottogtest." + id}
	t.Cleanup(func() {
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		js.DeleteStream(context.Background(), opts.Stream)
		js.DeleteKeyValue(context.Background(), opts.Bucket)
	})
	return opts
}

func open(t testing.TB) (*natsgroups.Store, func() *natsgroups.Store) {
	nc := natstest.Conn(t)
	opts := testOptions(t, nc)
	o := func() *natsgroups.Store {
		s, err := natsgroups.Open(context.Background(), nc, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return o(), o
}

// TestGroupConformance runs the group storage suite of the SQL stores
// against a real JetStream server.
func TestGroupConformance(t *testing.T) {
	storetest.RunGroups(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		s, reopen := open(t)
		return groupsOnly{Store: s}, func() relay.Store { return groupsOnly{Store: reopen()} }
	})
}
