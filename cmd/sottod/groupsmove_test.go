package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sotto/relay"
	"sotto/relay/natsbus/natstest"
	"sotto/relay/sqlitestore"
)

// A relay that switches to -mailbox jetstream while its SQL store holds
// groups (kept there before relay/natsgroups) refuses to start rather than
// hide them from their members; -groups store keeps serving them.
func TestJetStreamMailboxRefusesToLeaveGroupsBehind(t *testing.T) {
	ctx := context.Background()
	natsURL := natstest.URL(t)
	jsName := "MOVE_" + strings.ToUpper(strings.ReplaceAll(t.Name(), "Test", ""))[:20]
	deleteJetStreamAfter(t, jsName)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := defaultBackendConfig()
	cfg.Mailbox, cfg.NATSURL, cfg.JetStreamName = "jetstream", natsURL, jsName
	open := func(dir string, c BackendConfig) (*backends, error) {
		if err := errors.Join(c.problems()...); err != nil {
			t.Fatalf("config: %v", err)
		}
		b, err := openBackends(ctx, dir, c, time.Hour, time.Minute, log)
		if err == nil {
			t.Cleanup(func() {
				if c, ok := b.mailbox.(io.Closer); ok {
					c.Close()
				}
				b.store.Close()
				b.close()
			})
		}
		return b, err
	}

	// An empty store: groups go to JetStream.
	b, err := open(t.TempDir(), cfg)
	if err != nil {
		t.Fatalf("empty store: %v", err)
	}
	if _, ok := b.mailbox.(relay.GroupStore); !ok {
		t.Fatal("the JetStream mailbox keeps no groups")
	}

	// A store with a group.
	dir := t.TempDir()
	s, err := sqlitestore.Open(ctx, dir, sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	alice := relay.DeviceAddr{Account: relay.AccountID{1}, Device: 1}
	bob := relay.DeviceAddr{Account: relay.AccountID{2}, Device: 1}
	res, err := s.CommitGroup(ctx, &relay.GroupCommit{GroupID: []byte("g"), Epoch: 0, Sender: alice, Commit: []byte("c0"),
		Welcome: []byte("w0"), Added: []relay.DeviceAddr{bob}, GroupInfo: []byte("gi"), Timestamp: time.Now()})
	if err != nil || !res.Accepted {
		t.Fatalf("make a group: %+v %v", res, err)
	}
	s.Close()

	if _, err := open(dir, cfg); !errors.Is(err, ErrGroupsInStore) || !strings.Contains(err.Error(), "-groups store") {
		t.Fatalf("store with a group, groups to JetStream: %v, want ErrGroupsInStore naming -groups store", err)
	}
	cfg.Groups = "store"
	b, err = open(dir, cfg)
	if err != nil {
		t.Fatalf("-groups store: %v", err)
	}
	if _, ok := b.mailbox.(relay.GroupStore); ok {
		t.Fatal("-groups store: the mailbox still claims the groups")
	}
	if st, err := b.store.(relay.GroupStore).Group(ctx, []byte("g")); err != nil || st.Epoch != 1 {
		t.Fatalf("-groups store: the group in the store: %+v %v", st, err)
	}
}

func TestGroupsFlagValidation(t *testing.T) {
	c := validConfig()
	c.Groups = "store"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-groups goes with -mailbox jetstream") {
		t.Errorf("-groups without jetstream: %v", err)
	}
	c.Groups = "redis"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `-groups "redis"`) {
		t.Errorf("-groups redis: %v", err)
	}
}

// deleteJetStreamAfter deletes the streams and buckets of jsName when t ends.
func deleteJetStreamAfter(t *testing.T, jsName string) {
	t.Cleanup(func() {
		js, err := jetstream.New(natstest.Conn(t))
		if err != nil {
			return
		}
		o, g := jetStreamOptions(jsName, 0, 0), jetStreamGroupOptions(jsName)
		for _, s := range []string{o.Stream, g.Stream} {
			js.DeleteStream(context.Background(), s)
		}
		for _, b := range []string{o.Bucket, g.Bucket} {
			js.DeleteKeyValue(context.Background(), b)
		}
	})
}
