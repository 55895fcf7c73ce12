package transport_test

import (
	"bytes"
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// sendRecord is a row of the relay's send_log table (dedupe records).
type sendRecord struct {
	account []byte
	device  uint32
	msgID   string
}

// sendRecords reads what the relay's database keeps of past sends, as an
// attacker who copies the file would.
func sendRecords(t *testing.T, r *testRelay) []sendRecord {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(r.dir, sqlitestore.FileName)}).EscapedPath()+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT account, device, message_id FROM send_log ORDER BY message_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []sendRecord
	for rows.Next() {
		var s sendRecord
		var mid []byte
		if err := rows.Scan(&s.account, &s.device, &mid); err != nil {
			t.Fatal(err)
		}
		s.msgID = string(mid)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSendRecordsForgotten: the relay keeps a send's dedupe record only
// for the retry window (DedupeTTL), and a sealed send's record names no
// sender. A retry within the window is still a duplicate; after it the
// records are gone while the envelopes wait for their recipient.
func TestSendRecordsForgotten(t *testing.T) {
	const window = 10 * time.Minute
	r := startRelay(t, func(c *relay.Config) { c.DedupeTTL = window })
	ctx := context.Background()
	alice, _ := r.join(t, "alice")
	bob, bd := r.join(t, "bob")
	accessKey := bytes.Repeat([]byte{7}, wire.AccessKeySize)
	if err := bob.SetAccessKey(ctx, accessKey); err != nil {
		t.Fatal(err)
	}
	bob.Close()
	if _, err := send(t, alice, "bob", "named", "hello", bd); err != nil {
		t.Fatal(err)
	}
	anon := r.dial(t) // never authenticates
	sealed := &wire.SealedSendRequest{Recipient: "bob", AccessKey: accessKey, MessageId: []byte("sealed"),
		Messages: []*wire.OutgoingMessage{{DeviceId: bd.id, RegistrationId: bd.reg, Type: wire.EnvelopeTypeSealed, Content: []byte("who?")}}}
	if _, err := anon.SealedSend(ctx, sealed); err != nil {
		t.Fatal(err)
	}
	recs := sendRecords(t, r)
	if len(recs) != 2 || recs[0].msgID != "named" || recs[1].msgID != "sealed" {
		t.Fatalf("send records: %+v", recs)
	}
	if !bytes.Equal(recs[1].account, make([]byte, 16)) || recs[1].device != 0 {
		t.Fatalf("a sealed send's record names a sender: %x.%d", recs[1].account, recs[1].device)
	}

	// Within the window a retry is recognized.
	r.clock.advance(window - time.Second)
	r.srv.Expire(ctx)
	if resp, err := send(t, alice, "bob", "named", "hello", bd); err != nil || !resp.Duplicate {
		t.Fatalf("retry within the window: %v %v", resp, err)
	}
	if resp, err := anon.SealedSend(ctx, sealed); err != nil || !resp.Duplicate {
		t.Fatalf("sealed retry within the window: %v %v", resp, err)
	}
	if n := len(sendRecords(t, r)); n != 2 {
		t.Fatalf("%d send records inside the window, want 2", n)
	}

	// After it the relay has forgotten who sent what; Bob still gets both
	// messages, once each.
	r.clock.advance(2 * time.Second)
	r.srv.Expire(ctx)
	if recs := sendRecords(t, r); len(recs) != 0 {
		t.Fatalf("send records outlive the retry window: %+v", recs)
	}
	b := r.login(t, bd)
	got := map[string]int{}
	for range 2 {
		e := recv(t, b)
		got[string(e.Content)]++
		if err := b.Ack(ctx, e.Id); err != nil {
			t.Fatal(err)
		}
	}
	expectNothing(t, b)
	if got["hello"] != 1 || got["who?"] != 1 {
		t.Fatalf("bob got %v", got)
	}
}
