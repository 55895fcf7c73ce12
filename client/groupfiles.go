package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"sotto/client/content"
	"sotto/client/groups"
)

// SendGroupFile encrypts the file at path, uploads it once to the
// relay's blob store and shares its pointer (with the file's key) in an
// encrypted group message: every member device downloads the same blob.
func (c *Client) SendGroupFile(ctx context.Context, m *groups.Manager, group []byte, path string, o FileOptions) (*groups.Message, error) {
	if err := c.AllowedByPolicy(ctx, FeatureAttachments); err != nil {
		return nil, fmt.Errorf("client: attachments: %w", err)
	}
	if o.ViewOnce {
		return nil, ErrGroupViewOnce
	}
	if _, err := m.Info(ctx, group); err != nil {
		return nil, err // refused before uploading what could not be sent
	}
	f, size, err := openFileToSend(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ptr, writeKey, err := c.uploadFile(ctx, f, size, path, o)
	if err != nil {
		return nil, err
	}
	defer clear(writeKey)
	msg, err := m.SendAttachment(ctx, group, ptr)
	clear(ptr.Key)
	if err != nil {
		// Nobody got the pointer: take the blob down.
		c.deleteBlob(ctx, &blobRef{ID: ptr.BlobId, WriteKey: writeKey})
		return nil, err
	}
	return msg, nil
}

// Errors of group files.
var (
	// ErrGroupNoFile: the group message has no file (or it was deleted).
	ErrGroupNoFile = errors.New("client: that group message has no file")
	// ErrGroupViewOnce: view-once files are not in group chats yet (one
	// is neither sent nor written to a file).
	ErrGroupViewOnce = errors.New("client: view-once files are not supported in group chats yet")
)

// DownloadGroupFile fetches, checks and decrypts the file of group
// message id into dst.
func (c *Client) DownloadGroupFile(ctx context.Context, m *groups.Manager, group, id []byte, dst io.Writer) (*groups.Message, error) {
	msg, err := m.Message(ctx, group, id)
	if err != nil {
		return nil, err
	}
	if msg.Attachment == nil || len(msg.Attachment.Pointer) == 0 {
		return msg, ErrGroupNoFile
	}
	if msg.Attachment.ViewOnce {
		return msg, ErrGroupViewOnce
	}
	var p content.AttachmentPointer
	if err := proto.Unmarshal(msg.Attachment.Pointer, &p); err != nil {
		return msg, fmt.Errorf("client: group file pointer: %w", err)
	}
	defer clear(p.Key)
	if _, err := c.connection(); err != nil {
		return msg, err
	}
	return msg, c.blobs().Download(ctx, &p, dst, nil)
}
