package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"sotto/client/account"
	"sotto/client/attach"
	"sotto/client/conversation"
	"sotto/client/store"
)

// BenchmarkHistoryTransfer10k measures the client CPU of a history
// transfer of 10,000 messages (about 100 bytes of text each) without the
// network: encode, seal (client/attach), open and check, decode, and import
// into a fresh encrypted store in one transaction. The export's plaintext
// and sealed sizes are reported per op.
func BenchmarkHistoryTransfer10k(b *testing.B) {
	ctx := context.Background()
	now := time.Now()
	hb := &conversation.HistoryBundle{}
	for i := range 10000 {
		id := make([]byte, 16)
		rand.Read(id)
		from := "bob"
		if i%2 == 1 {
			from = "alice"
		}
		hb.Messages = append(hb.Messages, conversation.HistoryMessage{Author: from, Message: &Message{ID: id, Peer: "bob", From: from,
			Outgoing: from == "alice", SentAt: now, ServerTime: now, Text: fmt.Sprintf("message %d: %x", i, id) + " — about lunch and the plans for Friday evening"}})
	}
	key := make([]byte, attach.KeySize)
	rand.Read(key)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var plain, sealed int64
	for i := 0; b.Loop(); i++ {
		pt, err := conversation.EncodeHistory(hb)
		if err != nil {
			b.Fatal(err)
		}
		s, err := attach.NewSealer(key, bytes.NewReader(pt), int64(len(pt)), attach.DefaultChunkSize)
		if err != nil {
			b.Fatal(err)
		}
		blob, err := io.ReadAll(io.NewSectionReader(s, 0, s.Size()))
		if err != nil {
			b.Fatal(err)
		}
		digest := sha256.Sum256(blob)
		var out bytes.Buffer
		o, err := attach.NewOpener(&out, key, digest[:], int64(len(pt)), attach.DefaultChunkSize)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.Write(blob); err != nil {
			b.Fatal(err)
		}
		if err := o.Close(); err != nil {
			b.Fatal(err)
		}
		dec, err := conversation.DecodeHistory(out.Bytes())
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db, err := store.Create(ctx, filepath.Join(b.TempDir(), fmt.Sprint(i)), []byte("pw"), &store.Options{KDF: testKDF, MinPassphraseBits: anyPassphrase})
		if err != nil {
			b.Fatal(err)
		}
		c := &Client{opts: Options{Now: time.Now}, log: log, db: db, acct: &account.Account{Username: "alice"}}
		b.StartTimer()
		sum, err := c.importHistory(ctx, dec)
		if err != nil || sum.Messages != 10000 {
			b.Fatalf("import %+v %v", sum, err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
		plain, sealed = int64(len(pt)), int64(len(blob))
	}
	b.ReportMetric(float64(plain), "plain-bytes/op")
	b.ReportMetric(float64(sealed), "sealed-bytes/op")
}
