package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Client is a Go client of the API.
type Client struct {
	hc *http.Client
}

// NewClient returns a client whose connections come from dial.
func NewClient(dial func(ctx context.Context) (net.Conn, error)) *Client {
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		DisableKeepAlives: false,
		MaxIdleConns:      4,
		IdleConnTimeout:   30 * time.Second,
	}
	return &Client{hc: &http.Client{Transport: tr}}
}

// Socket is the agent's socket in home.
func Socket(home string) string { return filepath.Join(home, SocketName) }

// Dial returns a client of the agent listening in home (it connects on
// the first request).
func Dial(home string) *Client {
	sock := Socket(home)
	return NewClient(func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	})
}

// CloseIdle closes the client's idle connections.
func (c *Client) CloseIdle() { c.hc.CloseIdleConnections() }

func (c *Client) request(ctx context.Context, method, path string, body io.Reader, contentType string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://sotto"+Prefix+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

func readError(resp *http.Response) error {
	var eb ErrorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb); err != nil || eb.Error == nil {
		return &Error{Kind: KindInternal, Message: fmt.Sprintf("agent: %s", resp.Status)}
	}
	return eb.Error
}

// Do sends a JSON request (in nil: no body) and decodes the answer into
// out (nil: none expected).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	resp, err := c.request(ctx, method, path, body, ct)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("agent: bad answer: %w", err)
	}
	return nil
}

func peerPath(peer string, rest ...string) string {
	return "/conversations/" + url.PathEscape(peer) + strings.Join(rest, "")
}

func msgPath(peer string, id ID, rest string) string {
	b, _ := id.MarshalText()
	return peerPath(peer, "/messages/", string(b), rest)
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	return &s, c.Do(ctx, http.MethodGet, "/status", nil, &s)
}

// Unlock unlocks the agent with passphrase.
func (c *Client) Unlock(ctx context.Context, passphrase []byte) error {
	return c.Do(ctx, http.MethodPost, "/unlock", UnlockRequest{Passphrase: string(passphrase)}, nil)
}

// Lock locks the agent.
func (c *Client) Lock(ctx context.Context) error {
	return c.Do(ctx, http.MethodPost, "/lock", nil, nil)
}

// Shutdown stops the agent.
func (c *Client) Shutdown(ctx context.Context) error {
	return c.Do(ctx, http.MethodPost, "/shutdown", nil, nil)
}

// Send sends text to peer (quote: the message it replies to, or nil).
func (c *Client) Send(ctx context.Context, peer, text string, quote ID) (*MessageAnswer, error) {
	var a MessageAnswer
	return &a, c.Do(ctx, http.MethodPost, peerPath(peer, "/messages"), SendRequest{Text: text, QuoteID: quote}, &a)
}

// SendFile sends the file at path (read by the agent) to peer.
func (c *Client) SendFile(ctx context.Context, peer string, f FileRequest) (*MessageAnswer, error) {
	var a MessageAnswer
	return &a, c.Do(ctx, http.MethodPost, peerPath(peer, "/files"), f, &a)
}

// History returns the last limit messages with peer (0: all), oldest first.
func (c *Client) History(ctx context.Context, peer string, limit int) ([]*Message, error) {
	var a MessagesAnswer
	return a.Messages, c.Do(ctx, http.MethodGet, peerPath(peer, "/messages?limit="+strconv.Itoa(limit)), nil, &a)
}

// Message returns one message of the conversation with peer.
func (c *Client) Message(ctx context.Context, peer string, id ID) (*Message, error) {
	var a MessageAnswer
	return a.Message, c.Do(ctx, http.MethodGet, msgPath(peer, id, ""), nil, &a)
}

// Conversations lists the conversations, the most recent first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var a ConversationsAnswer
	return a.Conversations, c.Do(ctx, http.MethodGet, "/conversations", nil, &a)
}

// MarkRead marks incoming messages read.
func (c *Client) MarkRead(ctx context.Context, peer string, ids ...ID) error {
	return c.Do(ctx, http.MethodPost, peerPath(peer, "/read"), ReadRequest{IDs: ids}, nil)
}

// Typing tells peer this user started or stopped typing.
func (c *Client) Typing(ctx context.Context, peer string, typing bool) error {
	return c.Do(ctx, http.MethodPost, peerPath(peer, "/typing"), TypingRequest{Typing: typing}, nil)
}

// React reacts to a message ("": withdraws the reaction).
func (c *Client) React(ctx context.Context, peer string, id ID, emoji string) error {
	return c.Do(ctx, http.MethodPost, msgPath(peer, id, "/reaction"), ReactRequest{Emoji: emoji}, nil)
}

// Edit edits an own message.
func (c *Client) Edit(ctx context.Context, peer string, id ID, text string) error {
	return c.Do(ctx, http.MethodPost, msgPath(peer, id, "/edit"), EditRequest{Text: text}, nil)
}

// Delete deletes an own message for everyone.
func (c *Client) Delete(ctx context.Context, peer string, id ID) error {
	return c.Do(ctx, http.MethodDelete, msgPath(peer, id, ""), nil, nil)
}

// Timer returns the disappearing-messages timer with peer (0: off).
func (c *Client) Timer(ctx context.Context, peer string) (time.Duration, error) {
	var t TimerBody
	err := c.Do(ctx, http.MethodGet, peerPath(peer, "/timer"), nil, &t)
	return time.Duration(t.Seconds) * time.Second, err
}

// SetTimer sets the disappearing-messages timer with peer (0: off).
func (c *Client) SetTimer(ctx context.Context, peer string, d time.Duration) error {
	return c.Do(ctx, http.MethodPut, peerPath(peer, "/timer"), TimerBody{Seconds: int64(d / time.Second)}, nil)
}

// Download saves the attachment of message id to a file.
func (c *Client) Download(ctx context.Context, id ID, r DownloadRequest) (*DownloadAnswer, error) {
	b, _ := id.MarshalText()
	var a DownloadAnswer
	return &a, c.Do(ctx, http.MethodPost, "/attachments/"+string(b)+"/download", r, &a)
}

// Content streams the plaintext of the attachment of message id (a
// view-once attachment's one opening).
func (c *Client) Content(ctx context.Context, id ID) (io.ReadCloser, error) {
	b, _ := id.MarshalText()
	resp, err := c.request(ctx, http.MethodGet, "/attachments/"+string(b)+"/content", nil, "")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Search finds messages containing query.
func (c *Client) Search(ctx context.Context, query string, limit int) ([]*Message, error) {
	var a MessagesAnswer
	q := url.Values{"q": {query}, "limit": {strconv.Itoa(limit)}}
	return a.Messages, c.Do(ctx, http.MethodGet, "/search?"+q.Encode(), nil, &a)
}

// Contacts lists the contacts.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	var a ContactsAnswer
	return a.Contacts, c.Do(ctx, http.MethodGet, "/contacts", nil, &a)
}

// Settings returns the device's settings (every field set).
func (c *Client) Settings(ctx context.Context) (*Settings, error) {
	var s Settings
	return &s, c.Do(ctx, http.MethodGet, "/settings", nil, &s)
}

// SetSettings changes the settings set in s and returns them all.
func (c *Client) SetSettings(ctx context.Context, s Settings) (*Settings, error) {
	var out Settings
	return &out, c.Do(ctx, http.MethodPut, "/settings", s, &out)
}

// Notices lists the verified organization notices.
func (c *Client) Notices(ctx context.Context) (*NoticesAnswer, error) {
	var a NoticesAnswer
	return &a, c.Do(ctx, http.MethodGet, "/notices", nil, &a)
}

// Stream is an open event stream.
type Stream struct {
	body io.ReadCloser
	sc   *bufio.Scanner
}

// Events opens the event stream: live events only when replay is false;
// else first the kept events after seq since.
func (c *Client) Events(ctx context.Context, replay bool, since uint64) (*Stream, error) {
	path := "/events"
	if replay {
		path += "?since=" + strconv.FormatUint(since, 10)
	}
	resp, err := c.request(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return nil, err
	}
	return newStream(resp.Body), nil
}

func newStream(body io.ReadCloser) *Stream {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	return &Stream{body: body, sc: sc}
}

// Next returns the next event; io.EOF when the agent ended the stream.
func (s *Stream) Next() (*Event, error) {
	var data []byte
	for s.sc.Scan() {
		line := s.sc.Bytes()
		switch {
		case len(line) == 0:
			if data == nil {
				continue
			}
			var e Event
			if err := json.Unmarshal(data, &e); err != nil {
				return nil, fmt.Errorf("agent: bad event: %w", err)
			}
			return &e, nil
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
	if err := s.sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.EOF
}

// Close ends the stream.
func (s *Stream) Close() error { return s.body.Close() }

// Activity tells the agent its user is active (for the idle lock).
func (c *Client) Activity(ctx context.Context) error {
	return c.Do(ctx, http.MethodPost, "/activity", nil, nil)
}

// SafetyNumber returns the safety number with user.
func (c *Client) SafetyNumber(ctx context.Context, user string) (*SafetyNumber, error) {
	var s SafetyNumber
	return &s, c.Do(ctx, http.MethodGet, "/contacts/"+url.PathEscape(user)+"/safety-number", nil, &s)
}

// Revoke takes user's sealed access to this account away.
func (c *Client) Revoke(ctx context.Context, user string) error {
	return c.Do(ctx, http.MethodPost, "/contacts/"+url.PathEscape(user)+"/revoke", nil, nil)
}

// AuditKeyLog audits the key log's new leaves and returns how many
// bindings it checked.
func (c *Client) AuditKeyLog(ctx context.Context) (int, error) {
	var a AuditAnswer
	err := c.Do(ctx, http.MethodPost, "/keylog/audit", nil, &a)
	return a.Audited, err
}

// Restore gives user's sealed access back after Revoke.
func (c *Client) Restore(ctx context.Context, user string) error {
	return c.Do(ctx, http.MethodPost, "/contacts/"+url.PathEscape(user)+"/restore", nil, nil)
}

// Verify accepts the current safety number with user.
func (c *Client) Verify(ctx context.Context, user string) error {
	return c.Do(ctx, http.MethodPost, "/contacts/"+url.PathEscape(user)+"/verify", nil, nil)
}

// Devices lists the account's devices.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	var a DevicesAnswer
	return a.Devices, c.Do(ctx, http.MethodGet, "/devices", nil, &a)
}

// RemoveDevice removes (revokes) one of the account's other devices.
func (c *Client) RemoveDevice(ctx context.Context, id uint32) error {
	return c.Do(ctx, http.MethodDelete, "/devices/"+strconv.FormatUint(uint64(id), 10), nil, nil)
}

// WipeDevice sends a wipe order to one of the account's other devices.
func (c *Client) WipeDevice(ctx context.Context, id uint32) error {
	return c.Do(ctx, http.MethodPost, "/devices/"+strconv.FormatUint(uint64(id), 10)+"/wipe", nil, nil)
}
