package client

// Search and the conversation list: the scan is conversation.Search
// (client/conversation/search.go, which says what it costs and why there
// is no index); the facade gives it the peers.

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"

	"sotto/client/content"
	"sotto/client/conversation"
	"sotto/client/store"
)

// Search returns the messages of every conversation whose current text
// contains query (case-insensitive), oldest first per conversation,
// conversations by name; at most limit (all when limit <= 0).
func (c *Client) Search(ctx context.Context, query string, limit int) ([]*Message, error) {
	if strings.TrimSpace(query) == "" {
		return nil, nil
	}
	peers, err := c.peers(ctx)
	if err != nil {
		return nil, err
	}
	return conversation.Search(ctx, c.db, peers, query, limit)
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

// Conversation summarizes one conversation for a conversation list:
// Unread counts the incoming messages not marked read (MarkRead).
type Conversation = conversation.Summary

// Conversations lists the conversations with a history, the most recent
// first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	peers, err := c.peers(ctx)
	if err != nil {
		return nil, err
	}
	return conversation.Summaries(ctx, c.db, peers)
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
