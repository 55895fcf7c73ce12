package conversation

// Search and the conversation list.
//
// The store keeps no plaintext, so there is no plaintext index to query:
// Search decrypts every conversation's history and scans it in memory. The
// cost is one row read, one AEAD open and one JSON decode per stored message
// per search (BenchmarkScanHistory10k in package client: about 0.22 s for
// 10,000 messages, 22 µs each, on a shared 2-core machine), memory for one
// conversation at a time, and no extra data on disk that could outlive a
// disappearing message. An encrypted token index (HMACs of normalized words
// under the store's lookup key) would answer in O(matches) but reveals word
// frequencies and equal words across messages to whoever holds the file;
// it is the next step if histories grow large.

import (
	"context"
	"slices"
	"strings"
)

// Search returns the messages of the conversations with peers (in that
// order) whose current text contains query (case-insensitive), oldest
// first per conversation; at most limit (all when limit <= 0). Deleted
// messages and timer changes never match.
func Search(ctx context.Context, db Store, peers []string, query string, limit int) ([]*Message, error) {
	q := strings.ToLower(strings.TrimSpace(query))
	if q == "" {
		return nil, nil
	}
	var out []*Message
	for _, p := range peers {
		hist, err := History(ctx, db, p, 0)
		if err != nil {
			return nil, err
		}
		for _, m := range hist {
			if m.Deleted || m.Kind != "" || !strings.Contains(strings.ToLower(m.Text), q) {
				continue
			}
			out = append(out, m)
			if limit > 0 && len(out) >= limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// Summary summarizes one conversation for a conversation list.
type Summary struct {
	Peer   string
	Unread int      // incoming messages not marked read
	Last   *Message // nil when the history is empty
}

// Summaries lists the conversations with peers that have a history, the
// most recent first.
func Summaries(ctx context.Context, db Store, peers []string) ([]Summary, error) {
	var out []Summary
	for _, p := range peers {
		hist, err := History(ctx, db, p, 0)
		if err != nil {
			return nil, err
		}
		if len(hist) == 0 {
			continue
		}
		cv := Summary{Peer: p, Last: hist[len(hist)-1]}
		for _, m := range hist {
			if !m.Outgoing && !m.Read && !m.Deleted && m.Kind == "" {
				cv.Unread++
			}
		}
		out = append(out, cv)
	}
	slices.SortStableFunc(out, func(a, b Summary) int { return b.Last.ServerTime.Compare(a.Last.ServerTime) })
	return out, nil
}
