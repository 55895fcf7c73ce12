package api

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"sotto/client"
	"sotto/client/groups"
)

// GroupMessageFeatures are the messaging features of a group message
// (docs/agent-api.md, Group messages).
type GroupMessageFeatures struct {
	// ID is the message's id (none for messages of older builds): the
	// MSGID of react, edit, delete, reply and download.
	ID     ID        `json:"id,omitempty"`
	SentAt time.Time `json:"sent_at,omitzero"`
	// Kind: "" a message, "timer" a timer change, "alert" what this
	// device detected about the group (a fork, a withheld commit).
	Kind         string           `json:"kind,omitempty"`
	QuoteID      ID               `json:"quote_id,omitempty"`
	Mentions     []string         `json:"mentions,omitempty"`
	Reactions    []GroupReaction  `json:"reactions,omitempty"`
	Versions     []MessageVersion `json:"versions,omitempty"`
	Deleted      bool             `json:"deleted,omitempty"`
	Attachment   *GroupAttachment `json:"attachment,omitempty"`
	TimerSeconds uint32           `json:"timer_seconds,omitempty"`
	ExpiresAt    time.Time        `json:"expires_at,omitzero"`
	DeliveredTo  []string         `json:"delivered_to,omitempty"`
	ReadBy       []string         `json:"read_by,omitempty"`
	Read         bool             `json:"read,omitempty"`
	// Updated: in an event or a sync's answer, an earlier message that
	// changed (a reaction, an edit, a delete, a receipt).
	Updated bool `json:"updated,omitempty"`
}

// GroupReaction is one user's reaction to a group message.
type GroupReaction struct {
	From  string    `json:"from"`
	Emoji string    `json:"emoji"`
	At    time.Time `json:"at"`
}

// GroupAttachment describes a group message's file (its key stays in the
// agent).
type GroupAttachment struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type,omitempty"`
	ViewOnce    bool   `json:"view_once,omitempty"`
}

func groupFeatures(m *groups.Message) GroupMessageFeatures {
	f := GroupMessageFeatures{ID: m.ID, SentAt: m.SentAt, Kind: m.Kind, QuoteID: m.QuoteID, Mentions: m.Mentions, Deleted: m.Deleted,
		TimerSeconds: m.TimerSeconds, ExpiresAt: m.ExpiresAt, DeliveredTo: m.DeliveredTo, ReadBy: m.ReadBy, Read: m.Read, Updated: m.Updated}
	for _, r := range m.Reactions {
		f.Reactions = append(f.Reactions, GroupReaction(r))
	}
	for _, v := range m.Versions {
		f.Versions = append(f.Versions, MessageVersion{ID: v.ID, Text: v.Text, At: v.At})
	}
	if a := m.Attachment; a != nil {
		f.Attachment = &GroupAttachment{Name: a.Name, Size: a.Size, ContentType: a.ContentType, ViewOnce: a.ViewOnce}
	}
	return f
}

// Group message change kinds (event group_update, field change), beside
// joined, removed and changed.
const (
	GroupForked   = "forked"   // the relay gave members different commits
	GroupWithheld = "withheld" // the relay withheld a commit from this device
	GroupRejoined = "rejoined" // this device rejoined by external commit
	// GroupRecovered: the group left quarantine (a refused commit was
	// undone by an admin's commit, or this device rejoined a group
	// without it); docs/architecture.md, Refused commits.
	GroupRecovered = "recovered"
)

// Group message request bodies.
type (
	GroupReactRequest struct {
		Emoji string `json:"emoji"` // "": withdraw the reaction
	}
	GroupEditRequest struct {
		Text string `json:"text"`
	}
	GroupTimerRequest struct {
		Seconds uint32 `json:"seconds"` // 0: off
	}
	// GroupFileRequest: the file at Path (absolute, read by the agent).
	GroupFileRequest struct {
		Path    string `json:"path"`
		Caption string `json:"caption,omitempty"`
	}
	// GroupDownloadRequest: the file is written at Out (absolute; it
	// must not exist).
	GroupDownloadRequest struct {
		Out string `json:"out"`
	}
	GroupReadAnswer struct {
		Marked int `json:"marked"`
	}
)

func groupMessagePath(group, id ID, rest string) string {
	b, _ := id.MarshalText()
	return groupPath(group, "/messages/"+string(b)+rest)
}

// ReplyGroup sends text to a group as a reply to message quote.
func (c *Client) ReplyGroup(ctx context.Context, group ID, text string, quote ID) (*GroupMessage, error) {
	var a GroupMessageAnswer
	return a.Message, c.Do(ctx, http.MethodPost, groupPath(group, "/messages"), GroupSendRequest{Text: text, QuoteID: quote}, &a)
}

// ReactGroup sets this user's reaction to a group message ("": withdraw).
func (c *Client) ReactGroup(ctx context.Context, group, id ID, emoji string) (*GroupMessage, error) {
	var a GroupMessageAnswer
	return a.Message, c.Do(ctx, http.MethodPost, groupMessagePath(group, id, "/react"), GroupReactRequest{Emoji: emoji}, &a)
}

// EditGroup replaces the text of this user's group message.
func (c *Client) EditGroup(ctx context.Context, group, id ID, text string) (*GroupMessage, error) {
	var a GroupMessageAnswer
	return a.Message, c.Do(ctx, http.MethodPost, groupMessagePath(group, id, "/edit"), GroupEditRequest{Text: text}, &a)
}

// DeleteGroupMessage deletes this user's group message for everyone.
func (c *Client) DeleteGroupMessage(ctx context.Context, group, id ID) (*GroupMessage, error) {
	var a GroupMessageAnswer
	return a.Message, c.Do(ctx, http.MethodDelete, groupMessagePath(group, id, ""), nil, &a)
}

// SetGroupTimer sets a group's disappearing-messages timer (0: off).
func (c *Client) SetGroupTimer(ctx context.Context, group ID, d time.Duration) (*GroupMessage, error) {
	var a GroupMessageAnswer
	return a.Message, c.Do(ctx, http.MethodPost, groupPath(group, "/timer"), GroupTimerRequest{Seconds: uint32(d / time.Second)}, &a)
}

// SendGroupFile shares the file at path (absolute) with a group.
func (c *Client) SendGroupFile(ctx context.Context, group ID, req GroupFileRequest) (*GroupMessage, error) {
	var a GroupMessageAnswer
	return a.Message, c.Do(ctx, http.MethodPost, groupPath(group, "/files"), req, &a)
}

// DownloadGroupFile writes a group message's file at out (absolute).
func (c *Client) DownloadGroupFile(ctx context.Context, group, id ID, out string) (*DownloadGroupAnswer, error) {
	var a DownloadGroupAnswer
	return &a, c.Do(ctx, http.MethodPost, groupMessagePath(group, id, "/download"), GroupDownloadRequest{Out: out}, &a)
}

// DownloadGroupAnswer is where the file went, and its message.
type DownloadGroupAnswer struct {
	Path    string        `json:"path"`
	Message *GroupMessage `json:"message"`
}

// MarkGroupRead marks a group's received messages read (and sends read
// receipts when the group-receipts setting is on).
func (c *Client) MarkGroupRead(ctx context.Context, group ID) (int, error) {
	var a GroupReadAnswer
	return a.Marked, c.Do(ctx, http.MethodPost, groupPath(group, "/read"), nil, &a)
}

// Client converts a group message to the client core's message type, for
// front ends that show 1:1 and group messages with the same code (the
// chat app). Peer is left empty; a message of an older build, which has
// no id, gets one made of its group and seq (good to show, not to act
// on). Delivered and Read on an own message: some member's receipt came.
func (m *GroupMessage) Client() *client.Message {
	if m == nil {
		return nil
	}
	r := &client.Message{ID: m.ID, From: m.From, FromDevice: m.FromDevice, Outgoing: m.Outgoing, SentAt: m.SentAt,
		ServerTime: m.ServerTime, Text: m.Text, QuoteID: m.QuoteID, Kind: m.Kind, Deleted: m.Deleted, ExpiresAt: m.ExpiresAt,
		Read: m.Read || !m.Outgoing && len(m.ID) == 0, Delivered: len(m.DeliveredTo) > 0}
	if len(r.ID) == 0 {
		r.ID = binary.BigEndian.AppendUint64(append([]byte("group"), m.Group...), m.Seq)
	}
	if r.SentAt.IsZero() {
		r.SentAt = m.Received
	}
	if m.Outgoing {
		r.Read = len(m.ReadBy) > 0
	}
	if m.Kind == groups.KindTimer {
		r.TimerSeconds = m.TimerSeconds
	} else {
		r.ExpireSeconds = m.TimerSeconds
	}
	for _, x := range m.Reactions {
		r.Reactions = append(r.Reactions, client.Reaction(x))
	}
	for _, v := range m.Versions {
		r.Versions = append(r.Versions, client.Version{ID: v.ID, Text: v.Text, At: v.At})
	}
	if a := m.Attachment; a != nil {
		r.Attachment = &client.Attachment{Name: a.Name, Size: a.Size, ContentType: a.ContentType, ViewOnce: a.ViewOnce}
	}
	return r
}

// UploadGroupFile shares a file given as bytes (body) with a group, under
// name, as the web app sends one.
func (c *Client) UploadGroupFile(ctx context.Context, group ID, name, caption string, body io.Reader) (*GroupMessage, error) {
	q := url.Values{"name": {name}}
	if caption != "" {
		q.Set("caption", caption)
	}
	resp, err := c.request(ctx, http.MethodPost, groupPath(group, "/files")+"?"+q.Encode(), body, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a GroupMessageAnswer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("agent: bad answer: %w", err)
	}
	return a.Message, nil
}

// GroupContent opens the decrypted bytes of a group message's file.
func (c *Client) GroupContent(ctx context.Context, group, id ID) (io.ReadCloser, error) {
	resp, err := c.request(ctx, http.MethodGet, groupMessagePath(group, id, "/content"), nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
