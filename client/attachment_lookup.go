package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"sotto/client/store"
)

// AttachmentMessage returns the message that carries the attachment with
// message id id (ErrNoAttachment: none), so that a front end knows the
// file's name and type before it downloads it.
func (c *Client) AttachmentMessage(ctx context.Context, id []byte) (*Message, error) {
	rb, err := c.db.Get(ctx, tblAttachments, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoAttachment
	}
	if err != nil {
		return nil, err
	}
	var rec attachmentRecord
	if err := json.Unmarshal(rb, &rec); err != nil {
		return nil, fmt.Errorf("client: attachment record: %w", err)
	}
	mb, err := c.db.Message(ctx, convFor(rec.Peer), messageKey(rec.Author, id))
	if err != nil {
		return nil, err
	}
	var m Message
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("client: message record: %w", err)
	}
	return &m, nil
}
