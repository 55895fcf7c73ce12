package client

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/client/store"
)

// BenchmarkScanHistory10k measures what Search does per conversation: read,
// decrypt and decode 10,000 stored messages, then match their text.
func BenchmarkScanHistory10k(b *testing.B) {
	ctx := context.Background()
	db, err := store.Create(ctx, filepath.Join(b.TempDir(), "s"), []byte("pw"), &store.Options{KDF: testKDF, MinPassphraseBits: anyPassphrase})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	err = db.Update(ctx, func(tx *store.Tx) error {
		for i := range 10000 {
			m := &Message{ID: []byte(fmt.Sprintf("%016d", i)), Peer: "bob", From: "bob", SentAt: time.Now(),
				Text: fmt.Sprintf("message number %d about lunch", i)}
			if _, err := appendMessage(ctx, tx, "bob", m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		rows, err := db.Messages(ctx, convFor("bob"), 0)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, r := range rows {
			var m Message
			if err := json.Unmarshal(r, &m); err != nil {
				b.Fatal(err)
			}
			if strings.Contains(strings.ToLower(m.Text), "number 9999 ") {
				n++
			}
		}
		if n != 1 {
			b.Fatalf("found %d", n)
		}
	}
}
