package conversation

import (
	"context"
	"testing"
	"time"
)

// TestSearchAndSummaries: search matches the current text case-insensitively,
// never a deleted message or a timer change; the list counts unread
// incoming texts and puts the most recent conversation first.
func TestSearchAndSummaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openStore(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	for i, m := range []*Message{
		{Peer: "bob", From: "bob", Text: "Lunch at noon?", ServerTime: t0},
		{Peer: "bob", From: "alice", Outgoing: true, Text: "lunch, yes", ServerTime: t0.Add(time.Second)},
		{Peer: "bob", From: "bob", Text: "lunch was gone", Deleted: true, ServerTime: t0.Add(2 * time.Second)},
		{Peer: "carol", From: "carol", Kind: KindTimer, Text: "lunch", TimerSeconds: 60, ServerTime: t0.Add(3 * time.Second)},
		{Peer: "carol", From: "carol", Text: "hello", Read: true, ServerTime: t0.Add(4 * time.Second)},
	} {
		m.ID = msgID(byte(i + 1))
		if _, err := Append(ctx, db, m.From, m); err != nil {
			t.Fatal(err)
		}
	}
	peers := []string{"bob", "carol", "dave"}
	got, err := Search(ctx, db, peers, "  LUNCH ", 0)
	if err != nil || len(got) != 2 || got[0].Text != "Lunch at noon?" || got[1].Text != "lunch, yes" {
		t.Fatalf("search: %v %v", got, err)
	}
	if got, _ := Search(ctx, db, peers, "lunch", 1); len(got) != 1 {
		t.Fatalf("limit 1 gave %d", len(got))
	}
	if got, _ := Search(ctx, db, peers, " ", 0); got != nil {
		t.Fatalf("empty query matched %d", len(got))
	}
	sums, err := Summaries(ctx, db, peers)
	if err != nil || len(sums) != 2 {
		t.Fatalf("summaries %+v %v", sums, err)
	}
	if sums[0].Peer != "carol" || sums[0].Unread != 0 || sums[1].Peer != "bob" || sums[1].Unread != 1 {
		t.Fatalf("summaries %+v %+v", sums[0], sums[1])
	}
}
