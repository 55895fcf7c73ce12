package client

// Search and the conversation list.
//
// The store keeps no plaintext, so there is no plaintext index to query:
// Search decrypts every conversation's history and scans it in memory. The
// cost is one row read, one AEAD open and one JSON decode per stored message
// per search (BenchmarkScanHistory10k: about 0.22 s for 10,000 messages,
// 22 µs each, on a shared 2-core machine), memory for one conversation at a
// time, and no extra data on disk that could outlive a disappearing
// message. An encrypted token index (HMACs of
// normalized words under the store's lookup key) would answer in
// O(matches) but reveals word frequencies and equal words across messages
// to whoever holds the file; it is the next step if histories grow large.

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"

	"sotto/client/content"
	"sotto/client/store"
)

// Search returns the messages of every conversation whose current text
// contains query (case-insensitive), oldest first per conversation,
// conversations by name; at most limit (all when limit <= 0).
func (c *Client) Search(ctx context.Context, query string, limit int) ([]*Message, error) {
	q := strings.ToLower(strings.TrimSpace(query))
	if q == "" {
		return nil, nil
	}
	peers, err := c.peers(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Message
	for _, p := range peers {
		hist, err := c.History(ctx, p, 0)
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

// peers lists the users this device may have a conversation with.
func (c *Client) peers(ctx context.Context) ([]string, error) {
	cs, err := c.Contacts(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ct := range cs {
		if ct.User != c.acct.Username {
			out = append(out, ct.User)
		}
	}
	return out, nil
}

// Conversation summarizes one conversation for a conversation list.
type Conversation struct {
	Peer   string
	Unread int      // incoming messages not marked read (MarkRead)
	Last   *Message // nil when the history is empty
}

// Conversations lists the conversations with a history, the most recent
// first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	peers, err := c.peers(ctx)
	if err != nil {
		return nil, err
	}
	var out []Conversation
	for _, p := range peers {
		hist, err := c.History(ctx, p, 0)
		if err != nil {
			return nil, err
		}
		if len(hist) == 0 {
			continue
		}
		cv := Conversation{Peer: p, Last: hist[len(hist)-1]}
		for _, m := range hist {
			if !m.Outgoing && !m.Read && !m.Deleted && m.Kind == "" {
				cv.Unread++
			}
		}
		out = append(out, cv)
	}
	slices.SortStableFunc(out, func(a, b Conversation) int { return b.Last.ServerTime.Compare(a.Last.ServerTime) })
	return out, nil
}

// syncRead tells the own other devices that user's messages ids were read;
// failures are only logged (the read state is a convenience).
func (c *Client) syncRead(ctx context.Context, user string, ids [][]byte) {
	ct, err := content.NewReadReceipt(ids, c.opts.Now())
	if err == nil {
		var relayID []byte
		if relayID, err = content.NewID(rand.Reader); err == nil {
			_, err = c.sendContent(ctx, c.acct.Username, content.NewSyncSent(user, ct), relayID)
		}
	}
	if err != nil && !errors.Is(err, ErrNoDevices) {
		c.log.Info("read state not synced to own devices", "err", err)
	}
}

// markSeen marks user's messages ids as read on this device.
func (c *Client) markSeen(ctx context.Context, user string, ids [][]byte) error {
	return c.db.Update(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			m, err := loadMessage(ctx, tx, user, user, id)
			if errors.Is(err, ErrNoMessage) {
				continue
			}
			if err != nil {
				return err
			}
			if m.Read {
				continue
			}
			m.Read = true
			if err := putMessage(ctx, tx, user, m); err != nil {
				return err
			}
		}
		return nil
	})
}
