package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"sotto/client/transport"
	"sotto/internal/orgtest"
	"sotto/relay/natsbus/natstest"
	"sotto/relay/pgstore"
	"sotto/relay/pgstore/pgtest"
	"sotto/wire"
)

func TestBackendFlagsValidation(t *testing.T) {
	c := validConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	c.Store, c.Bus, c.Mailbox = "mysql", "kafka", "redis"
	c.NATSURL = "x"
	err := c.Validate()
	for _, want := range []string{`-store "mysql"`, `-bus "kafka"`, `-mailbox "redis"`, "-nats-url goes with"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	c = validConfig()
	c.Store, c.Bus = "postgres", "nats"
	c.Mailbox, c.JetStreamName = "jetstream", "a.b"
	err = c.Validate()
	for _, want := range []string{"needs -postgres-url", "need -nats-url", `-jetstream-name "a.b"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	c = validConfig()
	c.Bus, c.NATSURL, c.PostgresURL = "nats", "http://secret:pw@x", "postgres://a@b/c"
	err = c.Validate()
	for _, want := range []string{"-postgres-url and -postgres-schema go with -store postgres", "not a nats://", "use it with -store postgres"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	if strings.Contains(err.Error(), ":pw@") {
		t.Errorf("password in the error: %v", err)
	}
	c = validConfig()
	c.Store, c.PostgresURL, c.Bus, c.NATSURL = "postgres", "postgres://sotto@db:5432/sotto", "nats", "nats://n1:4222,nats://n2:4222"
	if err := c.Validate(); err != nil {
		t.Fatalf("good multi-node config: %v", err)
	}
}

// startNode runs an in-process relay node on PostgreSQL (schema) and NATS.
func startNode(t *testing.T, pgURL, schema, natsURL, jsName string) *Daemon {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.TURNListen = ""
	cfg.BlobDir = "off"
	cfg.EnrollRate, cfg.EnrollBurst = 100, 100
	cfg.Store, cfg.PostgresURL, cfg.PGSchema = "postgres", pgURL, schema
	cfg.Bus, cfg.NATSURL = "nats", natsURL
	if jsName != "" {
		cfg.Mailbox, cfg.JetStreamName = "jetstream", jsName
	}
	d, err := NewDaemon(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		d.Close()
	})
	return d
}

type nodeDevice struct {
	name string
	id   uint32
	reg  uint32
	key  ed25519.PrivateKey
}

func nodeRandBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func enrollOn(t *testing.T, url string, seat *orgtest.Seat) (*transport.Conn, *nodeDevice) {
	t.Helper()
	name := seat.Username
	c := dialNode(t, url)
	_, key, _ := ed25519.GenerateKey(nil)
	d := &nodeDevice{name: name, reg: 4242, key: key}
	keys := &wire.PreKeys{
		SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: nodeRandBytes(33), Signature: nodeRandBytes(64)},
		LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: nodeRandBytes(1569), Signature: nodeRandBytes(64)},
	}
	ik := nodeRandBytes(33)
	resp, err := c.Enroll(context.Background(), &wire.EnrollRequest{
		ActivationCode: seat.Code, Username: name, IdentityKey: ik, IdentityCertificate: seat.Certify(ik), RegistrationId: d.reg,
		DeviceName: name + "-laptop", Prekeys: keys,
	}, key)
	if err != nil {
		t.Fatalf("enroll %s: %v", name, err)
	}
	d.id = resp.DeviceId
	return c, d
}

func dialNode(t *testing.T, url string) *transport.Conn {
	t.Helper()
	c, err := transport.Dial(context.Background(), url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func drained(t *testing.T, c *transport.Conn) {
	t.Helper()
	select {
	case e := <-c.Envelopes():
		t.Fatalf("unexpected envelope %q", e.Content)
	case <-c.Drained():
	case <-time.After(10 * time.Second):
		t.Fatal("not drained within 10s")
	}
}

func recvEnv(t *testing.T, c *transport.Conn) *wire.Envelope {
	t.Helper()
	select {
	case e, ok := <-c.Envelopes():
		if !ok {
			t.Fatalf("connection ended: %v", c.Err())
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no envelope within 10s")
	}
	return nil
}

// TestTwoNodesPostgresNATS runs two relay nodes on one PostgreSQL schema
// and one NATS server: a device connected to node A gets at once what
// is sent through node B (the wake-up crosses NATS), and a device that
// was offline drains its mailbox from either node and acks it. The
// mailbox is PostgreSQL's, then a JetStream stream.
func TestTwoNodesPostgresNATS(t *testing.T) {
	t.Run("postgres-mailbox", func(t *testing.T) { twoNodes(t, false) })
	t.Run("jetstream-mailbox", func(t *testing.T) { twoNodes(t, true) })
}

func twoNodes(t *testing.T, jetStream bool) {
	pgURL := pgtest.URL(t)
	natsURL := natstest.URL(t)
	schema := pgtest.Schema(t, pgURL)
	jsName := ""
	if jetStream {
		jsName = strings.ToUpper(schema)
		t.Cleanup(func() {
			nc := natstest.Conn(t)
			js, err := jetstream.New(nc)
			if err != nil {
				return
			}
			o := jetStreamOptions(jsName, 0, 0)
			js.DeleteStream(context.Background(), o.Stream)
			js.DeleteKeyValue(context.Background(), o.Bucket)
			g := jetStreamGroupOptions(jsName)
			js.DeleteStream(context.Background(), g.Stream)
			js.DeleteKeyValue(context.Background(), g.Bucket)
		})
	}
	a := startNode(t, pgURL, schema, natsURL, jsName)
	b := startNode(t, pgURL, schema, natsURL, jsName)
	ctx := context.Background()

	admin, err := pgstore.Open(ctx, pgURL, pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	org := orgtest.New("Test Org")
	if err := org.Register(ctx, admin); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	seat := func(name string) *orgtest.Seat {
		s, err := org.Invite(ctx, admin, name, now.Add(time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Watch the NATS subjects of the relay's wake-ups.
	nc := natstest.Conn(t)
	wakeups, err := nc.SubscribeSync("sotto.dev.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	aliceA, alice := enrollOn(t, a.URL(), seat("alice"))
	bobB, _ := enrollOn(t, b.URL(), seat("bob"))
	drained(t, aliceA)

	send := func(msgID, content string) {
		t.Helper()
		_, err := bobB.SendMessage(ctx, &wire.SendMessageRequest{Recipient: "alice", MessageId: []byte(msgID), Messages: []*wire.OutgoingMessage{
			{DeviceId: alice.id, RegistrationId: alice.reg, Type: 3, Content: []byte(content)},
		}})
		if err != nil {
			t.Fatalf("send %s: %v", msgID, err)
		}
	}
	send("m1", "hello across nodes")
	e := recvEnv(t, aliceA)
	if string(e.Content) != "hello across nodes" || e.Sender != "bob" {
		t.Fatalf("got %q from %q", e.Content, e.Sender)
	}
	if err := aliceA.Ack(ctx, e.Id); err != nil {
		t.Fatal(err)
	}
	// The wake-up went through NATS on alice's subject.
	acc, err := admin.AccountByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	wantSubj := fmt.Sprintf("sotto.dev.%s.%d", acc.ID, alice.id)
	for {
		m, err := wakeups.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("no NATS wake-up on %s: %v", wantSubj, err)
		}
		if m.Subject == wantSubj {
			break
		}
	}

	// Offline: alice disconnects; bob sends three through node B; alice
	// logs in on node A and gets them in order, acks, and a new login
	// on node B finds nothing.
	aliceA.Close()
	for i := range 3 {
		send(fmt.Sprintf("off%d", i), fmt.Sprintf("offline %d", i))
	}
	send("off0", "offline 0") // a retry: stored once
	c := dialNode(t, a.URL())
	if _, err := c.Authenticate(ctx, "alice", alice.id, alice.key); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e := recvEnv(t, c)
		if want := fmt.Sprintf("offline %d", i); string(e.Content) != want {
			t.Fatalf("got %q want %q", e.Content, want)
		}
		if err := c.Ack(ctx, e.Id); err != nil {
			t.Fatal(err)
		}
	}
	drained(t, c)
	if _, err := c.Ping(ctx); err != nil { // the acks were processed
		t.Fatal(err)
	}
	c.Close()
	c2 := dialNode(t, b.URL())
	if _, err := c2.Authenticate(ctx, "alice", alice.id, alice.key); err != nil {
		t.Fatal(err)
	}
	drained(t, c2)
	u, err := admin.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.QueuedEnvelopes != 0 || u.Accounts != 2 {
		t.Fatalf("usage after drain: %+v", u)
	}
	if jetStream {
		// The envelopes went through the stream and were all deleted.
		js, err := jetstream.New(natstest.Conn(t))
		if err != nil {
			t.Fatal(err)
		}
		st, err := js.Stream(ctx, jsName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 0 || info.State.LastSeq < 4 {
			t.Fatalf("stream after drain: %d messages, last sequence %d", info.State.Msgs, info.State.LastSeq)
		}
	}
}

// TestAdminPostgres runs `sottod admin` against a PostgreSQL relay store.
func TestAdminPostgres(t *testing.T) {
	pgURL := pgtest.URL(t)
	schema := pgtest.Schema(t, pgURL)
	var out, errb strings.Builder
	args := []string{"admin", "bootstrap", "-data", t.TempDir(), "-store", "postgres", "-postgres-url", pgURL, "-postgres-schema", schema, "-days", "7"}
	if code := run(args, &out, &errb); code != 0 || !strings.Contains(out.String(), "sotto-bootstrap:") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s, err := pgstore.Open(context.Background(), pgURL, pgstore.Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	codes, err := s.Codes(context.Background())
	if err != nil || len(codes) != 1 || codes[0].Seats != 1 || !strings.HasPrefix(codes[0].ID, "bootstrap-") ||
		codes[0].Expires.Sub(codes[0].Created) != 7*24*time.Hour {
		t.Fatalf("codes: %+v %v", codes, err)
	}
	out.Reset()
	if code := run([]string{"admin", "invitations", "list", "-store", "postgres", "-postgres-url", pgURL, "-postgres-schema", schema},
		&out, &errb); code != 0 || !strings.Contains(out.String(), codes[0].ID) {
		t.Fatalf("invitations list: exit %d: %s %s", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := run([]string{"admin", "usage", "-store", "postgres"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "needs -postgres-url") {
		t.Fatalf("missing url: exit %d: %s", code, errb.String())
	}
}
