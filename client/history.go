package client

// History transfer at link time.
//
// When the user agrees, the approving device exports its conversation
// history, contacts (identity keys and verification state), conversation
// timers and settings (never private keys or sessions: the new device has
// its own keys and builds its own sessions) in the format of
// client/conversation/history_codec.go, encrypts the export as an attachment blob under a
// fresh random key (client/attach: chunked AES-256-GCM, SHA-256 digest)
// and uploads it to the relay's blob store. The blob's pointer (id, key,
// digest, size) travels inside the HPKE-sealed provisioning message, so
// the relay only ever holds an opaque blob of a given size.
//
// The new device keeps the pointer in its encrypted store until
// ImportHistory fetches the blob (the blob API needs a registered device),
// checks its digest and every chunk, decodes and checks the export, and
// imports it in one transaction: a corrupt or tampered blob imports
// nothing. Messages are de-duplicated by (author, id); a message whose
// disappearing timer has run out is neither exported nor imported, and the
// others keep their deadline; a view-once file travels without its key
// and arrives as already opened, so it is viewed at most once per account.
//
// The relay's DELETE is for the uploader only, so once it imported the
// history the new device sends the account's other devices an end-to-end
// encrypted DeviceOrder HISTORY_IMPORTED naming the blob; the approving
// device, which remembers the blobs it exported, deletes it then (the next
// time it receives). A blob whose import failed, or whose approving
// device never comes back online, expires with the relay's blob TTL (30
// days by default); without the key, which only the two devices saw, it is
// noise.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/attach"
	"sotto/client/content"
	"sotto/client/conversation"
	"sotto/client/keylog"
	"sotto/client/store"
)

const (
	tblHistoryImport  = "history-import"  // the new device's pending pointer
	tblHistoryExports = "history-exports" // blob ids this device exported: export time (8 bytes) and write key
)

var pendingHistoryKey = []byte("pending")

// Errors of history transfer callers branch on.
var (
	// ErrNoHistory: no history transfer is waiting on this device.
	ErrNoHistory = errors.New("client: no history transfer is pending")
	// ErrHistoryTampered: the history blob fails its digest or a chunk's
	// authentication. Nothing was imported.
	ErrHistoryTampered = errors.New("client: the transferred history is corrupt or was tampered with at the relay; nothing was imported")
)

// ErrBadHistory reports a history export that does not parse or breaks
// the format's rules. Nothing of such an export is imported.
var ErrBadHistory = conversation.ErrBadHistory

// MaxHistorySize bounds the plaintext of a history export (it is decoded
// in memory before anything is imported).
const MaxHistorySize = conversation.MaxHistorySize

// binding is the export form of a key log binding (nil: none).
func binding(b *keylog.BoundRecord) *conversation.Binding {
	if b == nil {
		return nil
	}
	return &conversation.Binding{Index: b.Index, Key: b.Key}
}

// historyPointer locates and unlocks a history export; it travels inside
// the sealed provisioning message.
type historyPointer struct {
	BlobID    []byte `json:"blob_id"`
	Key       []byte `json:"key"`
	Digest    []byte `json:"digest"`
	Size      uint64 `json:"size"` // plaintext bytes
	ChunkSize uint32 `json:"chunk_size"`
}

func (p *historyPointer) attachment() *content.AttachmentPointer {
	return &content.AttachmentPointer{BlobId: p.BlobID, Key: p.Key, Digest: p.Digest, Size: p.Size, ChunkSize: p.ChunkSize}
}

// check validates a received pointer (nil is fine: no history).
func (p *historyPointer) check() error {
	if p == nil {
		return nil
	}
	if err := attach.CheckPointer(p.attachment()); err != nil {
		return err
	}
	if p.Size > MaxHistorySize {
		return fmt.Errorf("%w: history larger than %d MiB", attach.ErrInvalidPointer, MaxHistorySize>>20)
	}
	return nil
}

func (p *historyPointer) wipe() {
	if p != nil {
		clear(p.Key)
	}
}

// HistorySummary counts what a history transfer carried.
type HistorySummary struct {
	Conversations int
	Messages      int // imported (or exported)
	Contacts      int
	Expired       int   // left out: their disappearing timer ran out
	Omitted       int   // the oldest messages, left out to stay within MaxHistorySize
	Duplicates    int   // already on the device
	Bytes         int64 // the export's plaintext size
}

// ApproveOptions tune ApproveLinkWith.
type ApproveOptions struct {
	// History sends this device's conversation history, contacts and
	// settings to the new device.
	History bool
}

// exportHistory collects what a new device of the account receives.
func (c *Client) exportHistory(ctx context.Context) (*conversation.HistoryBundle, *HistorySummary, error) {
	now := c.opts.Now()
	var b conversation.HistoryBundle
	var sum HistorySummary
	if raw, err := c.db.Get(ctx, tblSettings, settingsKey); err == nil {
		var s settingsRecord
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, nil, fmt.Errorf("client: settings: %w", err)
		}
		b.Settings = &s
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	c.flushAlarms(ctx) // bindings proven in a rolled-back transaction, too
	ids, err := c.db.List(ctx, tblIdentities)
	if err != nil {
		return nil, nil, err
	}
	var peers []string
	for _, e := range ids {
		user := string(e.Key)
		r, err := loadIdentity(ctx, c.db, user)
		if err != nil || r == nil {
			return nil, nil, err
		}
		if !conversation.ValidUser(user) {
			continue
		}
		bound, err := keylog.LoadBinding(ctx, c.db, user)
		if err != nil {
			return nil, nil, err
		}
		b.Contacts = append(b.Contacts, conversation.HistoryContact{User: user, Key: r.Key, Verified: r.Verified, Changed: r.Changed, Previous: r.Previous, Bound: binding(bound)})
		if user != c.acct.Username {
			peers = append(peers, user)
		}
	}
	slices.SortFunc(b.Contacts, func(x, y conversation.HistoryContact) int { return strings.Compare(x.User, y.User) })
	slices.Sort(peers)
	sum.Contacts = len(b.Contacts)
	for _, p := range peers {
		t, err := loadTimer(ctx, c.db, p)
		if err != nil {
			return nil, nil, err
		}
		if t.Seconds != 0 || t.AtMs != 0 {
			b.Timers = append(b.Timers, conversation.HistoryTimer{Peer: p, Seconds: t.Seconds, AtMs: t.AtMs})
		}
		rows, err := c.db.Messages(ctx, convFor(p), 0)
		if err != nil {
			return nil, nil, err
		}
		n := 0
		for _, row := range rows {
			var m Message
			if err := json.Unmarshal(row, &m); err != nil {
				return nil, nil, fmt.Errorf("client: message record: %w", err)
			}
			if !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt) {
				sum.Expired++ // the janitor has not got to it yet
				continue
			}
			author, err := c.storedAuthor(ctx, p, &m, row)
			if err != nil {
				return nil, nil, err
			}
			hm := conversation.HistoryMessage{Author: author, Message: &m}
			if m.Attachment != nil {
				m.Attachment.Path = "" // a local file of this device
				if !m.Attachment.ViewOnce && !m.Attachment.Opened {
					if hm.Pointer, err = c.attachmentPointer(ctx, &m); err != nil {
						return nil, nil, err
					}
				}
			}
			if hm.Check() != nil {
				c.log.Warn("history export: a message record left out (malformed)")
				continue
			}
			b.Messages = append(b.Messages, hm)
			n++
		}
		if n > 0 {
			sum.Conversations++
		}
	}
	if sum.Omitted, err = conversation.FitHistory(&b, MaxHistorySize); err != nil {
		return nil, nil, err
	}
	sum.Messages = len(b.Messages)
	return &b, &sum, nil
}

// storedAuthor finds under which author's name row (message m of the
// conversation with peer) is stored: that name and the id make the key
// that later edits, reactions and deletions look it up by.
func (c *Client) storedAuthor(ctx context.Context, peer string, m *Message, row []byte) (string, error) {
	for _, a := range []string{m.From, c.acct.Username, peer} {
		got, err := c.db.Message(ctx, convFor(peer), messageKey(a, m.ID))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if bytes.Equal(got, row) {
			return a, nil
		}
	}
	return m.From, nil
}

// attachmentPointer returns the serialized pointer of m's file, nil when
// this device holds none.
func (c *Client) attachmentPointer(ctx context.Context, m *Message) ([]byte, error) {
	raw, err := c.db.Get(ctx, tblAttachments, m.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec attachmentRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("client: attachment: %w", err)
	}
	if rec.Peer != m.Peer || rec.Author != m.From || len(rec.Pointer) == 0 {
		return nil, nil
	}
	return rec.Pointer, nil
}

// uploadHistory exports the history, seals it as a blob under a fresh key
// and uploads it.
func (c *Client) uploadHistory(ctx context.Context) (*historyPointer, *HistorySummary, error) {
	b, sum, err := c.exportHistory(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer b.Wipe()
	pt, err := conversation.EncodeHistory(b)
	if err != nil {
		return nil, nil, err
	}
	defer clear(pt)
	sum.Bytes = int64(len(pt))
	ptr, writeKey, err := c.blobs().Upload(ctx, bytes.NewReader(pt), int64(len(pt)), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("client: history upload: %w", err)
	}
	rec := append(binary.BigEndian.AppendUint64(nil, uint64(c.opts.Now().UnixMilli())), writeKey...)
	clear(writeKey)
	err = c.db.Put(ctx, tblHistoryExports, ptr.BlobId, rec)
	clear(rec)
	if err != nil {
		return nil, nil, err
	}
	return &historyPointer{BlobID: ptr.BlobId, Key: ptr.Key, Digest: ptr.Digest, Size: ptr.Size, ChunkSize: ptr.ChunkSize}, sum, nil
}

// deleteHistoryBlob takes down a history blob this device exported, once an
// own device reported it imported. Failures are logged: the blob then
// expires with the relay's TTL.
func (c *Client) deleteHistoryBlob(ctx context.Context, id []byte) {
	rec, err := c.db.Get(ctx, tblHistoryExports, id)
	if err != nil {
		return // not ours (another device approved), or already deleted
	}
	defer clear(rec)
	if len(rec) != 8+attach.WriteKeySize {
		c.log.Warn("history export record without a write key; the blob expires with the relay's TTL")
		if err := c.db.Delete(ctx, tblHistoryExports, id); err != nil {
			c.log.Warn("history export record not dropped", "err", err)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = c.blobs().Delete(ctx, id, rec[8:])
	if err != nil && !errors.Is(err, attach.ErrNotFound) {
		c.log.Warn("history blob not deleted; it expires with the relay's TTL", "err", err)
		return
	}
	if err := c.db.Delete(ctx, tblHistoryExports, id); err != nil {
		c.log.Warn("history export record not dropped", "err", err)
	}
}

// reportImported tells the own other devices that the history blob id was
// imported, so that its uploader deletes it.
func (c *Client) reportImported(ctx context.Context, id []byte) {
	ct, err := content.NewHistoryImported(id, c.opts.Now())
	if err == nil {
		_, err = c.sendContent(ctx, c.acct.Username, ct, ct.Id)
	}
	if err != nil && !errors.Is(err, ErrNoDevices) {
		c.log.Warn("history import not reported; the blob expires with the relay's TTL", "err", err)
	}
}

// savePendingHistory keeps a received history pointer (nil: none) in the
// new device's encrypted store until ImportHistory.
func savePendingHistory(ctx context.Context, db kv, p *historyPointer) error {
	if p == nil {
		return nil
	}
	if err := p.check(); err != nil {
		return fmt.Errorf("client: provisioning message: bad history pointer: %w", err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("client: history pointer: %w", err)
	}
	defer clear(b)
	return db.Put(ctx, tblHistoryImport, pendingHistoryKey, b)
}

// HistoryPending reports whether a history transfer waits for
// ImportHistory.
func (c *Client) HistoryPending(ctx context.Context) (bool, error) {
	_, err := c.db.Get(ctx, tblHistoryImport, pendingHistoryKey)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// ImportHistory fetches the history the approving device sent at link time,
// checks it and imports it (connection needed). It returns ErrNoHistory
// when none is pending, and an error wrapping ErrHistoryTampered or
// ErrBadHistory, with nothing imported, when the blob is corrupt or the
// export malformed; the pending transfer is then dropped. After a network
// failure it stays pending and ImportHistory may be called again.
func (c *Client) ImportHistory(ctx context.Context) (*HistorySummary, error) {
	raw, err := c.db.Get(ctx, tblHistoryImport, pendingHistoryKey)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoHistory
	}
	if err != nil {
		return nil, err
	}
	var p historyPointer
	err = json.Unmarshal(raw, &p)
	clear(raw)
	defer p.wipe()
	if err == nil {
		err = p.check()
	}
	if err != nil {
		c.dropPendingHistory(ctx)
		return nil, fmt.Errorf("%w: bad pointer", ErrBadHistory)
	}
	var buf bytes.Buffer
	buf.Grow(int(p.Size))
	defer func() { clear(buf.Bytes()) }()
	if err := c.blobs().Download(ctx, p.attachment(), &buf, nil); err != nil {
		if errors.Is(err, attach.ErrTampered) || errors.Is(err, attach.ErrTruncated) {
			c.dropPendingHistory(ctx)
			return nil, fmt.Errorf("%w (%v)", ErrHistoryTampered, err)
		}
		if errors.Is(err, attach.ErrNotFound) {
			c.dropPendingHistory(ctx)
		}
		return nil, fmt.Errorf("client: history download: %w", err)
	}
	b, err := conversation.DecodeHistory(buf.Bytes())
	if err != nil {
		c.dropPendingHistory(ctx)
		return nil, err
	}
	defer b.Wipe()
	sum, err := c.importHistory(ctx, b)
	if err != nil {
		return nil, err
	}
	sum.Bytes = int64(buf.Len())
	c.reportImported(ctx, p.BlobID)
	return sum, nil
}

func (c *Client) dropPendingHistory(ctx context.Context) {
	if err := c.db.Delete(ctx, tblHistoryImport, pendingHistoryKey); err != nil {
		c.log.Warn("history transfer: pending pointer not dropped", "err", err)
	}
}

// importHistory stores b in one transaction, which also drops the pending
// pointer.
func (c *Client) importHistory(ctx context.Context, b *conversation.HistoryBundle) (*HistorySummary, error) {
	self := c.acct.Username
	var sum HistorySummary
	var changed []string
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		sum, changed = HistorySummary{}, nil
		if b.Settings != nil {
			if _, err := tx.Get(ctx, tblSettings, settingsKey); errors.Is(err, store.ErrNotFound) {
				s, err := json.Marshal(b.Settings)
				if err != nil {
					return fmt.Errorf("client: settings: %w", err)
				}
				if err := tx.Put(ctx, tblSettings, settingsKey, s); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
		}
		for _, hc := range b.Contacts {
			if hc.User == self {
				continue
			}
			ch, err := importContact(ctx, tx, hc)
			if err != nil {
				return err
			}
			if ch {
				changed = append(changed, hc.User)
			}
			sum.Contacts++
		}
		for _, t := range b.Timers {
			if t.Peer == self {
				continue
			}
			if err := setTimer(ctx, tx, t.Peer, t.Seconds, time.UnixMilli(t.AtMs)); err != nil {
				return err
			}
		}
		now := c.opts.Now()
		convs := make(map[string]bool)
		for _, hm := range b.Messages {
			m := hm.Message
			if m.Peer == self || (m.From != self && m.From != m.Peer) || (hm.Author != self && hm.Author != m.Peer) {
				return fmt.Errorf("%w: a message is not between this account and its peer", ErrBadHistory)
			}
			if !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt) {
				sum.Expired++
				continue
			}
			m.Outgoing = m.From == self
			if m.Attachment != nil {
				m.Attachment.Path = ""
				if m.Attachment.ViewOnce {
					m.Attachment.Opened = true // viewed at most once per account
				}
			}
			added, err := appendMessage(ctx, tx, hm.Author, m)
			if err != nil {
				return err
			}
			if !added {
				sum.Duplicates++
				continue
			}
			// File records are keyed by id alone: one of another message
			// (a contact reusing the id of a file sent to them) stays, as
			// in applyAttachment, and this message's file is not kept.
			taken := false
			if m.Attachment != nil {
				if taken, err = otherAttachment(ctx, tx, m); err != nil {
					return err
				}
			}
			if m.Attachment != nil && m.Attachment.ViewOnce && !taken {
				// A record without a key: Download reports ErrViewedOnce.
				rec, err := json.Marshal(attachmentRecord{Peer: m.Peer, Author: m.From})
				if err != nil {
					return fmt.Errorf("client: attachment: %w", err)
				}
				if err := tx.Put(ctx, tblAttachments, m.ID, rec); err != nil {
					return err
				}
			}
			if hm.Pointer != nil && !taken {
				var p content.AttachmentPointer
				if err := proto.Unmarshal(hm.Pointer, &p); err != nil {
					return fmt.Errorf("%w: attachment pointer", ErrBadHistory)
				}
				err := putAttachment(ctx, tx, m, &p, nil)
				clear(p.Key)
				if err != nil {
					return err
				}
			}
			if err := scheduleExpiry(ctx, tx, hm.Author, m); err != nil {
				return err
			}
			sum.Messages++
			convs[m.Peer] = true
		}
		sum.Conversations = len(convs)
		return tx.Delete(ctx, tblHistoryImport, pendingHistoryKey)
	})
	if err != nil {
		if errors.Is(err, ErrBadHistory) {
			c.dropPendingHistory(ctx)
		}
		return nil, err
	}
	for _, u := range changed {
		c.emit(Event{Kind: EventIdentityChanged, User: u})
	}
	return &sum, nil
}

// otherAttachment reports whether the file record under m's id belongs to
// another message.
func otherAttachment(ctx context.Context, db kv, m *Message) (bool, error) {
	b, err := db.Get(ctx, tblAttachments, m.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var rec attachmentRecord
	uerr := json.Unmarshal(b, &rec)
	clear(b)
	clear(rec.Pointer)
	return uerr != nil || rec.Peer != m.Peer || rec.Author != m.From, nil
}

// importContact merges a contact's identity record from the history into
// what this device learned itself before the import. The history's record
// comes from an own device and is the reference; until the import, this
// device trusted any first key it saw (served or in a first message: a
// hostile relay's pick, say). So a key the user verified on this device
// stays; any other key that differs from the history's counts as a change
// that arrived after it (sending blocked until the user verifies), and a
// key the approving device had not accepted stays not accepted. It reports
// whether the contact is now shown as changed because of the merge.
//
// The newest key log leaf the approving device verified for the contact
// is imported only forward: a newer one this device verified itself stays
// (keylog.StoreBinding), so an import never lowers the stale-binding rule.
func importContact(ctx context.Context, tx kv, hc conversation.HistoryContact) (bool, error) {
	if hc.Bound != nil {
		if err := keylog.StoreBinding(ctx, tx, hc.User, keylog.BoundRecord{Index: hc.Bound.Index, Key: bytes.Clone(hc.Bound.Key)}); err != nil {
			return false, err
		}
	}
	cur, err := loadIdentity(ctx, tx, hc.User)
	switch {
	case err != nil:
		return false, err
	case cur == nil:
		return false, saveIdentity(ctx, tx, hc.User, &identityRecord{Key: hc.Key, Verified: hc.Verified, Changed: hc.Changed, Previous: hc.Previous})
	case cur.Verified && !cur.Changed, cur.Changed && sameKey(cur.Key, hc.Key):
		return false, nil // verified here, or already shown as changed
	case !sameKey(cur.Key, hc.Key):
		return true, saveIdentity(ctx, tx, hc.User, &identityRecord{Key: cur.Key, Changed: true, Previous: hc.Key})
	case hc.Changed:
		return true, saveIdentity(ctx, tx, hc.User, &identityRecord{Key: cur.Key, Changed: true, Previous: hc.Previous})
	case hc.Verified:
		cur.Verified = true
		return false, saveIdentity(ctx, tx, hc.User, cur)
	}
	return false, nil
}
