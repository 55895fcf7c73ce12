package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/attach"
	"sotto/client/content"
	"sotto/client/conversation"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/wire"
)

// Attachment is what the history shows of a file sent or received
// (client/conversation). The key to decrypt it is kept apart (table
// attachments), never in this record.
type Attachment = conversation.Attachment

// Errors of attachments callers branch on.
var (
	ErrNoAttachment = errors.New("client: no attachment with that message id (unknown, or its message disappeared)")
	ErrViewedOnce   = errors.New("client: this view-once attachment was already opened")
)

// tblAttachments maps a message id to its attachmentRecord.
const tblAttachments = "attachments"

// attachmentRecord locates an attachment's message and holds its pointer
// (with the file key) in the encrypted store.
type attachmentRecord struct {
	Peer    string `json:"peer"`
	Author  string `json:"author"`
	Pointer []byte `json:"pointer"` // serialized content.AttachmentPointer
	// WriteKey is the blob's write key, kept by the device that uploaded
	// it (only there) to delete the blob from the relay.
	WriteKey []byte `json:"write_key,omitempty"`
	// Files are the copies Download wrote, deleted with the message when
	// its disappearing timer runs out.
	Files []string `json:"files,omitempty"`
}

// FileOptions tune SendFile.
type FileOptions struct {
	ViewOnce    bool
	Caption     string
	ContentType string          // "": guessed from the name and the first bytes
	Progress    attach.Progress // upload progress
}

// blobs returns a blob API client authenticated through the relay
// connection.
func (c *Client) blobs() *attach.Client {
	return &attach.Client{
		Base:     c.acct.Relay,
		HTTP:     c.relayHTTP,
		CheckURL: c.opts.Transport.CheckURL,
		Token: func(ctx context.Context) (string, error) {
			conn, err := c.connection()
			if err != nil {
				return "", err
			}
			resp, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_BlobToken{BlobToken: &wire.BlobTokenRequest{}}})
			if err != nil {
				return "", fmt.Errorf("client: blob token: %w", err)
			}
			if resp.GetBlobToken() == nil {
				return "", errors.New("client: blob token: empty answer")
			}
			return resp.GetBlobToken().Token, nil
		},
	}
}

// SendFile encrypts the file at path, uploads it to the relay and sends
// its pointer to user (and a transcript to this account's other devices).
func (c *Client) SendFile(ctx context.Context, user, path string, o FileOptions) (*Message, error) {
	user = normalize(user)
	if user == "" || user == c.acct.Username {
		return nil, fmt.Errorf("client: cannot send to %q", user)
	}
	if err := c.AllowedByPolicy(ctx, FeatureAttachments); err != nil {
		return nil, fmt.Errorf("client: attachments: %w", err)
	}
	f, size, err := openFileToSend(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := c.connection(); err != nil {
		return nil, err
	}
	// Refuse before uploading what could not be sent.
	if rec, err := loadIdentity(ctx, c.db, user); err != nil {
		return nil, err
	} else if rec != nil && rec.Changed {
		return nil, &IdentityChangedError{User: user}
	}
	ptr, writeKey, err := c.uploadFile(ctx, f, size, path, o)
	if err != nil {
		return nil, err
	}
	defer clear(writeKey)
	id, err := content.NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	ct := &content.Content{Version: content.Version, Id: id, SentAtMs: c.opts.Now().UnixMilli(),
		Body: &content.Content_Attachment{Attachment: ptr}}
	ts, err := c.sendContent(ctx, user, ct, ct.Id)
	if err != nil {
		if sendRefused(err) {
			// Nobody got the pointer: take the blob down rather than
			// leave it on the relay until its TTL.
			c.deleteBlob(ctx, &blobRef{ID: ptr.BlobId, WriteKey: writeKey})
		}
		clear(ptr.Key)
		return nil, err
	}
	m := &Message{ID: ct.Id, Peer: user, From: c.acct.Username, FromDevice: c.acct.DeviceID, Outgoing: true,
		SentAt: time.UnixMilli(ct.SentAtMs), ServerTime: time.UnixMilli(ts), Text: o.Caption,
		Attachment: attachmentOf(ptr)}
	if err := c.db.Update(ctx, func(tx *store.Tx) error {
		if err := c.attachmentExpiry(ctx, tx, m); err != nil {
			return err
		}
		if _, err := appendMessage(ctx, tx, c.acct.Username, m); err != nil {
			return err
		}
		if err := putAttachment(ctx, tx, m, ptr, writeKey); err != nil {
			return err
		}
		return scheduleExpiry(ctx, tx, c.acct.Username, m)
	}); err != nil {
		return m, fmt.Errorf("client: file sent but not stored: %w", err)
	}
	relayID, err := content.NewID(rand.Reader)
	if err != nil {
		return m, err
	}
	if _, err := c.sendContent(ctx, c.acct.Username, content.NewSyncSent(user, ct), relayID); err != nil && !errors.Is(err, ErrNoDevices) {
		c.log.Warn("sync transcript to own devices failed", "err", err)
	}
	return m, nil
}

// blobRef is a blob this device uploaded: its id and write key.
type blobRef struct{ ID, WriteKey []byte }

// dropAttachment forgets the attachment of message m, deleted for
// everyone: its pointer and file key leave the store and the copies
// Download wrote are removed. When this device uploaded the file, it
// returns the blob for the caller to delete from the relay once the
// transaction committed.
func (c *Client) dropAttachment(ctx context.Context, tx *store.Tx, peer, author string, m *Message) (*blobRef, error) {
	var blob *blobRef
	if author == c.acct.Username && m.FromDevice == c.acct.DeviceID {
		blob = uploadedBlob(ctx, tx, m)
	}
	files, err := expireAttachment(ctx, tx, peer, author, m.ID)
	if err != nil {
		return nil, err
	}
	removeDownloads(c.log, files)
	m.Attachment = nil
	return blob, nil
}

// uploadedBlob returns the blob of message m's attachment when this
// device uploaded it (it holds the write key), nil otherwise (none, not
// ours, opened or gone).
func uploadedBlob(ctx context.Context, db kv, m *Message) *blobRef {
	if m.Attachment == nil {
		return nil
	}
	b, err := db.Get(ctx, tblAttachments, m.ID)
	if err != nil {
		return nil
	}
	var rec attachmentRecord
	err = json.Unmarshal(b, &rec)
	clear(b)
	if err != nil || len(rec.Pointer) == 0 || len(rec.WriteKey) != attach.WriteKeySize {
		clear(rec.Pointer)
		return nil
	}
	var p content.AttachmentPointer
	err = proto.Unmarshal(rec.Pointer, &p)
	clear(rec.Pointer)
	clear(p.Key)
	if err != nil || len(p.BlobId) != attach.IDSize {
		return nil
	}
	return &blobRef{ID: p.BlobId, WriteKey: rec.WriteKey}
}

// downloads lists the files Download wrote, wherever they are, as the
// attachment records name them; wipeSelf removes them with the store (the
// store's own wipe reaches only its folder).
func (c *Client) downloads(ctx context.Context) []string {
	entries, err := c.db.List(ctx, tblAttachments)
	if err != nil {
		c.log.Warn("listing downloaded attachments failed", "err", err)
		return nil
	}
	var files []string
	for _, e := range entries {
		var rec attachmentRecord
		err := json.Unmarshal(e.Value, &rec)
		clear(e.Value)
		clear(rec.Pointer)
		if err == nil {
			files = append(files, rec.Files...)
		}
	}
	return files
}

func removeDownloads(log *slog.Logger, files []string) {
	for _, f := range files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.Warn("removing a downloaded attachment failed", "err", err)
		}
	}
}

// sendRefused reports a send error after which the relay certainly stored
// nothing: refused before sending, or answered with a refusal. A dropped
// connection, a timeout or an internal error of the relay may come after
// the envelopes were stored, so they do not count.
func sendRefused(err error) bool {
	var te *transport.Error
	var ic *IdentityChangedError
	switch {
	case errors.As(err, &te):
		return te.Code != wire.ErrorCode_INTERNAL && te.Code != wire.ErrorCode_UNAVAILABLE
	case errors.As(err, &ic):
		return true
	}
	return errors.Is(err, ErrNoDevices) || errors.Is(err, ErrExpired)
}

// deleteBlob asks the relay to delete a blob this device uploaded, at
// once rather than at the end of its TTL. Best effort: what fails here
// still expires.
func (c *Client) deleteBlob(ctx context.Context, b *blobRef) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.blobs().Delete(ctx, b.ID, b.WriteKey); err != nil && !errors.Is(err, attach.ErrNotFound) {
		c.log.Warn("deleting an attachment blob on the relay failed; it expires with its TTL", "err", err)
	}
}

func guessType(f io.ReaderAt, name string) string {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t
	}
	head := make([]byte, 512)
	n, _ := f.ReadAt(head, 0)
	return http.DetectContentType(head[:n])
}

func attachmentOf(p *content.AttachmentPointer) *Attachment {
	return &Attachment{Name: p.FileName, Size: int64(p.Size), ContentType: p.ContentType, ViewOnce: p.ViewOnce}
}

// putAttachment stores the pointer of message m's attachment, with the
// blob's write key when this device uploaded it (nil otherwise).
func putAttachment(ctx context.Context, db kv, m *Message, p *content.AttachmentPointer, writeKey []byte) error {
	pb, err := proto.Marshal(p)
	if err != nil {
		return fmt.Errorf("client: attachment: %w", err)
	}
	b, err := json.Marshal(attachmentRecord{Peer: m.Peer, Author: m.From, Pointer: pb, WriteKey: writeKey})
	clear(pb)
	if err != nil {
		return fmt.Errorf("client: attachment: %w", err)
	}
	return db.Put(ctx, tblAttachments, m.ID, b)
}

// applyAttachment stores a received attachment pointer (the file itself is
// fetched by Download). own is true for a transcript from an own device.
func (c *Client) applyAttachment(ctx context.Context, tx *store.Tx, m *Message, p *content.AttachmentPointer, r *received) error {
	if err := attach.CheckPointer(p); err != nil {
		r.badBody = fmt.Errorf("client: attachment from %s dropped: %w", m.From, err)
		return nil
	}
	// Records are keyed by message id alone: one naming another message
	// (a contact reusing the id of a file sent to them) must not replace
	// that message's pointer and file key.
	if b, err := tx.Get(ctx, tblAttachments, m.ID); err == nil {
		var rec attachmentRecord
		uerr := json.Unmarshal(b, &rec)
		clear(b)
		clear(rec.Pointer)
		if uerr != nil || rec.Peer != m.Peer || rec.Author != m.From {
			r.badBody = fmt.Errorf("client: attachment from %s dropped: its id is another message's", m.From)
			return nil
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	m.Text = p.Caption
	m.Attachment = attachmentOf(p)
	if err := c.attachmentExpiry(ctx, tx, m); err != nil {
		return err
	}
	added, err := appendMessage(ctx, tx, m.From, m)
	if err != nil || !added {
		return err
	}
	if err := putAttachment(ctx, tx, m, p, nil); err != nil {
		return err
	}
	if err := scheduleExpiry(ctx, tx, m.From, m); err != nil {
		return err
	}
	r.msg = m
	return nil
}

// DownloadOptions tune Download.
type DownloadOptions struct {
	// Out is the file to create; "" picks a free name in Dir.
	Out string
	// Dir is where Out defaults to (the store's folder's "attachments").
	Dir string
	// Stream receives the plaintext instead of a file (required for a
	// view-once attachment, which is never written to disk by Download).
	Stream io.Writer
	// Progress receives download progress.
	Progress attach.Progress
}

// Download fetches, checks and decrypts the attachment of message id. A
// tampered or truncated blob is refused and nothing is left behind. For a
// view-once attachment the plaintext goes to o.Stream, then the key is
// deleted so it cannot be opened again. It returns the file written ("" when
// streamed) and the message.
func (c *Client) Download(ctx context.Context, id []byte, o DownloadOptions) (string, *Message, error) {
	rb, err := c.db.Get(ctx, tblAttachments, id)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, ErrNoAttachment
	}
	if err != nil {
		return "", nil, err
	}
	var rec attachmentRecord
	if err := json.Unmarshal(rb, &rec); err != nil {
		return "", nil, fmt.Errorf("client: attachment record: %w", err)
	}
	mb, err := c.db.Message(ctx, convFor(rec.Peer), messageKey(rec.Author, id))
	if err != nil {
		return "", nil, err
	}
	var m Message
	if err := json.Unmarshal(mb, &m); err != nil {
		return "", nil, fmt.Errorf("client: message record: %w", err)
	}
	if len(rec.Pointer) == 0 {
		return "", &m, ErrViewedOnce
	}
	var p content.AttachmentPointer
	if err := proto.Unmarshal(rec.Pointer, &p); err != nil {
		return "", nil, fmt.Errorf("client: attachment record: %w", err)
	}
	defer clear(p.Key)
	if _, err := c.connection(); err != nil {
		return "", nil, err
	}
	bc := c.blobs()
	if p.ViewOnce || o.Stream != nil {
		if o.Stream == nil {
			return "", &m, errors.New("client: a view-once attachment can only be opened as a stream")
		}
		if err := bc.Download(ctx, &p, o.Stream, o.Progress); err != nil {
			return "", &m, err
		}
		if p.ViewOnce {
			// Opened once: forget the key, keep the fact.
			m.Attachment.Opened = true
			err = c.db.Update(ctx, func(tx *store.Tx) error {
				if _, err := tx.Get(ctx, tblAttachments, id); err != nil {
					if errors.Is(err, store.ErrNotFound) {
						return nil // the message disappeared meanwhile
					}
					return err
				}
				rec.Pointer = nil
				b, err := json.Marshal(rec)
				if err != nil {
					return err
				}
				if err := tx.Put(ctx, tblAttachments, id, b); err != nil {
					return err
				}
				return putMessage(ctx, tx, rec.Author, &m)
			})
		}
		return "", &m, err
	}
	out := o.Out
	if out == "" {
		dir := o.Dir
		if dir == "" {
			dir = filepath.Join(c.db.Dir(), "attachments")
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", &m, fmt.Errorf("client: %w", err)
		}
		out = freeName(dir, attach.SafeName(p.FileName))
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".sotto-download-*")
	if err != nil {
		return "", &m, fmt.Errorf("client: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := bc.Download(ctx, &p, tmp, o.Progress); err != nil {
		return "", &m, err
	}
	if err := tmp.Sync(); err != nil {
		return "", &m, fmt.Errorf("client: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", &m, fmt.Errorf("client: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", &m, fmt.Errorf("client: %w", err)
	}
	ok = true
	m.Attachment.Path = out
	if err := c.recordDownload(ctx, id, out, &m); err != nil {
		if errors.Is(err, ErrNoAttachment) {
			// The message disappeared during the download: so does the file.
			if rerr := os.Remove(out); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				c.log.Warn("removing the download of a disappeared message failed", "err", rerr)
			}
		}
		return "", &m, err
	}
	return out, &m, nil
}

// recordDownload notes in the encrypted store that out holds the
// attachment of message id, so that it is deleted with the message. It
// returns ErrNoAttachment when the message is gone (it expired meanwhile).
func (c *Client) recordDownload(ctx context.Context, id []byte, out string, m *Message) error {
	return c.db.Update(ctx, func(tx *store.Tx) error {
		rb, err := tx.Get(ctx, tblAttachments, id)
		if errors.Is(err, store.ErrNotFound) {
			return ErrNoAttachment
		}
		if err != nil {
			return err
		}
		var rec attachmentRecord
		if err := json.Unmarshal(rb, &rec); err != nil {
			return fmt.Errorf("client: attachment record: %w", err)
		}
		clear(rb)
		if !slices.Contains(rec.Files, out) {
			rec.Files = append(rec.Files, out)
		}
		b, err := json.Marshal(rec)
		clear(rec.Pointer)
		if err != nil {
			return fmt.Errorf("client: attachment record: %w", err)
		}
		if err := tx.Put(ctx, tblAttachments, id, b); err != nil {
			return err
		}
		clear(b)
		if err := putMessage(ctx, tx, rec.Author, m); errors.Is(err, store.ErrNotFound) {
			return ErrNoAttachment
		} else if err != nil {
			return err
		}
		return nil
	})
}

// attachmentExpiry starts the disappearing timer of attachment message m
// from the conversation's timer (a pointer carries no timer of its own;
// both sides hold the same conversation timer).
func (c *Client) attachmentExpiry(ctx context.Context, db kv, m *Message) error {
	t, err := loadTimer(ctx, db, m.Peer)
	if err != nil {
		return err
	}
	c.setExpiry(m, t.Seconds)
	return nil
}

// freeName returns dir/name, or dir/"base (n).ext" when taken.
func freeName(dir, name string) string {
	p := filepath.Join(dir, name)
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for i := 1; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		p = filepath.Join(dir, fmt.Sprintf("%s (%d)%s", base, i, ext))
	}
}

// registerAttachments registers the handler of a contact's files (an own
// device's come as sync transcripts).
func (c *Client) registerAttachments(hs contentHandlers) {
	hs.register(func(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
		if env.Sender == c.acct.Username {
			return nil // own devices talk through sync transcripts
		}
		return c.applyIncomingAttachment(ctx, tx, env, ct, r)
	}, "attachment")
}

// applyIncomingAttachment handles an attachment sent to this account.
func (c *Client) applyIncomingAttachment(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, r *received) error {
	m := &Message{ID: ct.Id, Peer: env.Sender, From: env.Sender, FromDevice: env.SenderDevice,
		SentAt: time.UnixMilli(ct.SentAtMs), ServerTime: time.UnixMilli(env.ServerTimestampMs)}
	id, err := loadIdentity(ctx, tx, env.Sender)
	if err != nil {
		return err
	}
	m.Unverified = id != nil && id.Changed
	if err := c.applyAttachment(ctx, tx, m, ct.GetAttachment(), r); err != nil || r.msg == nil {
		return err
	}
	r.ackTo = env.Sender
	return nil
}

// applySyncAttachment handles the transcript of an attachment an own
// device sent to destination.
func (c *Client) applySyncAttachment(ctx context.Context, tx *store.Tx, env *wire.Envelope, inner *content.Content, destination string, r *received) error {
	m := &Message{ID: inner.Id, Peer: destination, From: c.acct.Username, FromDevice: env.SenderDevice, Outgoing: true, Synced: true,
		SentAt: time.UnixMilli(inner.SentAtMs), ServerTime: time.UnixMilli(env.ServerTimestampMs)}
	return c.applyAttachment(ctx, tx, m, inner.GetAttachment(), r)
}

// openFileToSend opens the regular file at path for an upload and
// returns its size, refusing one over attach.MaxFileSize.
func openFileToSend(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("client: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("client: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("client: %s is not a regular file", path)
	}
	if st.Size() > attach.MaxFileSize {
		f.Close()
		return nil, 0, fmt.Errorf("client: %s is larger than %d bytes", path, int64(attach.MaxFileSize))
	}
	return f, st.Size(), nil
}

// uploadFile encrypts and uploads f (size bytes, read from path) and
// returns its pointer, named and typed as o says, and the blob's write
// key (the caller clears it).
func (c *Client) uploadFile(ctx context.Context, f *os.File, size int64, path string, o FileOptions) (*content.AttachmentPointer, []byte, error) {
	ptr, writeKey, err := c.blobs().Upload(ctx, f, size, o.Progress)
	if err != nil {
		return nil, nil, err
	}
	ptr.FileName = attach.BaseName(filepath.Base(path))
	ptr.ContentType = o.ContentType
	if ptr.ContentType == "" {
		ptr.ContentType = guessType(f, ptr.FileName)
	}
	ptr.ViewOnce, ptr.Caption = o.ViewOnce, o.Caption
	return ptr, writeKey, nil
}
