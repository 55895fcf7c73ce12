package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/attach"
)

// maxJSON bounds a JSON request body.
const maxJSON = 1 << 20

// NewHandler returns the local API of a (docs/agent-api.md) as one handler
// for every /v1/ path. It does no authentication: the agent serves it on
// its owner-only socket, and another listener (the web app's) mounts it
// behind its own.
func NewHandler(a *Agent) http.Handler {
	h := &handler{a: a}
	mux := http.NewServeMux()
	p := api.Prefix
	// The agent.
	mux.HandleFunc("GET "+p+"/status", h.status)
	mux.HandleFunc("POST "+p+"/unlock", h.answer(h.unlock))
	mux.HandleFunc("POST "+p+"/lock", h.answer(func(*http.Request) (any, error) { a.Lock(); return nil, nil }))
	mux.HandleFunc("POST "+p+"/shutdown", h.answer(func(*http.Request) (any, error) { a.Shutdown(); return nil, nil }))
	mux.HandleFunc("GET "+p+"/events", h.eventStream)
	mux.HandleFunc("POST "+p+"/activity", h.device(func(*http.Request, *client.Client) (any, error) { return nil, nil }))
	// Conversations and messages.
	mux.HandleFunc("GET "+p+"/conversations", h.device(h.conversations))
	mux.HandleFunc("GET "+p+"/conversations/{peer}/messages", h.device(h.history))
	mux.HandleFunc("POST "+p+"/conversations/{peer}/messages", h.online(h.send))
	mux.HandleFunc("GET "+p+"/conversations/{peer}/messages/{id}", h.device(h.message))
	mux.HandleFunc("DELETE "+p+"/conversations/{peer}/messages/{id}", h.online(h.deleteMessage))
	mux.HandleFunc("POST "+p+"/conversations/{peer}/messages/{id}/reaction", h.online(h.react))
	mux.HandleFunc("POST "+p+"/conversations/{peer}/messages/{id}/edit", h.online(h.edit))
	mux.HandleFunc("POST "+p+"/conversations/{peer}/files", h.online(h.sendFile))
	mux.HandleFunc("POST "+p+"/conversations/{peer}/read", h.online(h.markRead))
	mux.HandleFunc("POST "+p+"/conversations/{peer}/typing", h.online(h.typing))
	mux.HandleFunc("GET "+p+"/conversations/{peer}/timer", h.device(h.timer))
	mux.HandleFunc("PUT "+p+"/conversations/{peer}/timer", h.online(h.setTimer))
	// Attachments.
	mux.HandleFunc("POST "+p+"/attachments/{id}/download", h.online(h.download))
	mux.HandleFunc("GET "+p+"/attachments/{id}/content", h.content)
	// Search, contacts, settings, notices.
	mux.HandleFunc("GET "+p+"/search", h.device(h.search))
	mux.HandleFunc("GET "+p+"/contacts", h.device(h.contacts))
	mux.HandleFunc("GET "+p+"/contacts/{user}/safety-number", h.online(h.safetyNumber))
	mux.HandleFunc("POST "+p+"/contacts/{user}/verify", h.online(h.verify))
	mux.HandleFunc("POST "+p+"/contacts/{user}/revoke", h.online(h.revoke))
	mux.HandleFunc("POST "+p+"/contacts/{user}/restore", h.online(h.restore))
	mux.HandleFunc("GET "+p+"/devices", h.online(h.devices))
	mux.HandleFunc("DELETE "+p+"/devices/{device}", h.online(h.removeDevice))
	mux.HandleFunc("POST "+p+"/devices/{device}/wipe", h.online(h.wipeDevice))
	mux.HandleFunc("GET "+p+"/settings", h.device(h.settings))
	mux.HandleFunc("PUT "+p+"/settings", h.device(h.setSettings))
	mux.HandleFunc("GET "+p+"/notices", h.device(h.notices))
	mux.HandleFunc("POST "+p+"/keylog/audit", h.online(h.auditKeyLog))
	routeGroups(mux, h)
	routeAdmin(mux, h)  // admin.go
	routeLink(mux, h)   // link.go
	routeUpdate(mux, h) // update.go
	routeCalls(mux, h)
	routeWebCalls(mux, h)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &api.Error{Kind: api.KindNotFound, Message: "agent: no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return mux
}

type handler struct{ a *Agent }

// errBadRequest marks a request the handler refuses.
func badRequest(format string, args ...any) error {
	return &api.Error{Kind: api.KindBadRequest, Message: fmt.Sprintf("agent: "+format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	ae := api.ErrorOf(err)
	writeJSON(w, ae.Kind.Status(), api.ErrorBody{Error: ae})
}

// answer adapts fn: its value is the JSON answer (nil: 204).
func (h *handler) answer(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		switch {
		case err != nil:
			writeError(w, err)
		case v == nil:
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, http.StatusOK, v)
		}
	}
}

// device is answer for the endpoints that use the device's keys: each
// counts as use for the idle lock, and a locked agent refuses them.
func (h *handler) device(fn func(*http.Request, *client.Client) (any, error)) http.HandlerFunc {
	return h.answer(func(r *http.Request) (any, error) {
		if h.a.c.Locked() {
			return nil, errLocked
		}
		h.a.touch()
		return fn(r, h.a.c)
	})
}

// online is device for the endpoints that need the relay: while the
// agent (re)connects, after an unlock or a lost connection, they wait for
// it a little rather than fail at once.
func (h *handler) online(fn func(*http.Request, *client.Client) (any, error)) http.HandlerFunc {
	return h.device(func(r *http.Request, c *client.Client) (any, error) {
		h.a.awaitOnline(r.Context())
		return fn(r, c)
	})
}

var errLocked = &api.Error{Kind: api.KindLocked, Message: "agent: the device is locked: unlock it first (sotto unlock)"}

func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, maxJSON)).Decode(v); err != nil {
		return badRequest("bad JSON body: %v", err)
	}
	return nil
}

func pathID(r *http.Request) (api.ID, error) {
	id, err := api.ParseID(r.PathValue("id"))
	if err != nil {
		return nil, badRequest("%v", err)
	}
	return id, nil
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.a.Status(r.Context()))
}

func (h *handler) unlock(r *http.Request) (any, error) {
	var req api.UnlockRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	pass := []byte(req.Passphrase)
	defer clear(pass)
	return nil, h.a.Unlock(r.Context(), pass)
}

func (h *handler) conversations(r *http.Request, c *client.Client) (any, error) {
	cs, err := c.Conversations(r.Context())
	if err != nil {
		return nil, err
	}
	out := api.ConversationsAnswer{Conversations: []api.Conversation{}}
	for _, cv := range cs {
		out.Conversations = append(out.Conversations, api.Conversation{Peer: cv.Peer, Unread: cv.Unread, Last: api.FromMessage(cv.Last)})
	}
	return out, nil
}

func intParam(r *http.Request, name string, def int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, badRequest("bad %s %q", name, s)
	}
	return n, nil
}

func (h *handler) history(r *http.Request, c *client.Client) (any, error) {
	limit, err := intParam(r, "limit", 50)
	if err != nil {
		return nil, err
	}
	ms, err := c.History(r.Context(), r.PathValue("peer"), limit)
	if err != nil {
		return nil, err
	}
	return api.MessagesAnswer{Messages: api.FromMessages(ms)}, nil
}

func (h *handler) send(r *http.Request, c *client.Client) (any, error) {
	var req api.SendRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Text == "" {
		return nil, badRequest("empty text")
	}
	peer := r.PathValue("peer")
	return h.sending(peer, func() (*client.Message, error) {
		return c.SendText(r.Context(), peer, req.Text, req.QuoteID)
	})
}

// sending runs send and answers its message, noting whether it went
// unsealed: the client core reports that as an event while sending, so
// the events published meanwhile are looked at.
func (h *handler) sending(peer string, send func() (*client.Message, error)) (any, error) {
	_, ch, cancel := h.a.events.subscribe(false, 0)
	defer cancel()
	m, err := send()
	if err != nil {
		return nil, err
	}
	a := api.MessageAnswer{Message: api.FromMessage(m)}
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return a, nil
			}
			if e.Type == api.EventSealedDowngrade && e.User == m.Peer {
				a.SealedDowngrade = true
			}
		default:
			return a, nil
		}
	}
}

func (h *handler) message(r *http.Request, c *client.Client) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	m, err := c.FindMessage(r.Context(), r.PathValue("peer"), id)
	if err != nil {
		return nil, err
	}
	return api.MessageAnswer{Message: api.FromMessage(m)}, nil
}

func (h *handler) deleteMessage(r *http.Request, c *client.Client) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	return nil, c.DeleteForEveryone(r.Context(), r.PathValue("peer"), id)
}

func (h *handler) react(r *http.Request, c *client.Client) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	var req api.ReactRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return nil, c.React(r.Context(), r.PathValue("peer"), id, req.Emoji)
}

func (h *handler) edit(r *http.Request, c *client.Client) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	var req api.EditRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Text == "" {
		return nil, badRequest("empty text")
	}
	return nil, c.Edit(r.Context(), r.PathValue("peer"), id, req.Text)
}

// sendFile sends a file named by path (JSON), or uploaded as the body.
func (h *handler) sendFile(r *http.Request, c *client.Client) (any, error) {
	peer := r.PathValue("peer")
	var req api.FileRequest
	u, err := h.fileRequest(r, &req, func() string { return req.Path })
	if err != nil {
		return nil, err
	}
	if u != nil {
		defer u.Close()
		req.Path, req.Caption, req.ViewOnce = u.Path, u.Caption, u.ViewOnce
	}
	return h.sending(peer, func() (*client.Message, error) {
		return c.SendFile(r.Context(), peer, req.Path, client.FileOptions{ViewOnce: req.ViewOnce, Caption: req.Caption,
			Progress: h.progress(req.Transfer)})
	})
}

func (h *handler) markRead(r *http.Request, c *client.Client) (any, error) {
	var req api.ReadRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	ids := make([][]byte, 0, len(req.IDs))
	for _, id := range req.IDs {
		ids = append(ids, id)
	}
	return nil, c.MarkRead(r.Context(), r.PathValue("peer"), ids...)
}

func (h *handler) typing(r *http.Request, c *client.Client) (any, error) {
	var req api.TypingRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return nil, c.SendTyping(r.Context(), r.PathValue("peer"), req.Typing)
}

func (h *handler) timer(r *http.Request, c *client.Client) (any, error) {
	d, err := c.Timer(r.Context(), r.PathValue("peer"))
	if err != nil {
		return nil, err
	}
	return api.TimerBody{Seconds: int64(d / time.Second)}, nil
}

func (h *handler) setTimer(r *http.Request, c *client.Client) (any, error) {
	var req api.TimerBody
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Seconds < 0 {
		return nil, badRequest("negative timer")
	}
	return nil, c.SetTimer(r.Context(), r.PathValue("peer"), time.Duration(req.Seconds)*time.Second)
}

func (h *handler) download(r *http.Request, c *client.Client) (any, error) {
	id, err := pathID(r)
	if err != nil {
		return nil, err
	}
	var req api.DownloadRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if (req.Out != "" && !filepath.IsAbs(req.Out)) || (req.Dir != "" && !filepath.IsAbs(req.Dir)) {
		return nil, badRequest("out and dir must be absolute paths")
	}
	m, err := c.AttachmentMessage(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if m.Attachment != nil && m.Attachment.ViewOnce {
		if m.Attachment.Opened {
			return nil, client.ErrViewedOnce
		}
		return nil, &api.Error{Kind: api.KindViewOnce, Message: fmt.Sprintf("agent: a view-once attachment is never written to a file: open it with GET %s/attachments/%x/content", api.Prefix, []byte(id))}
	}
	path, m, err := c.Download(r.Context(), id, client.DownloadOptions{Out: req.Out, Dir: req.Dir, Progress: h.progress(req.Transfer)})
	if err != nil {
		return nil, err
	}
	return api.DownloadAnswer{Path: path, Message: api.FromMessage(m)}, nil
}

// progressEvery is how often a transfer's progress is published, at
// most (and once at its end).
const progressEvery = 100 * time.Millisecond

// progress publishes the progress of the transfer its client named (nil
// when it named none).
func (h *handler) progress(transfer string) attach.Progress {
	if transfer == "" {
		return nil
	}
	var mu sync.Mutex
	var last time.Time
	return func(done, total int64) {
		mu.Lock()
		now := time.Now()
		skip := done < total && now.Sub(last) < progressEvery
		if !skip {
			last = now
		}
		mu.Unlock()
		if !skip {
			h.a.events.publish(api.Event{Type: api.EventProgress, Progress: &api.Progress{Transfer: transfer, Done: done, Total: total}})
		}
	}
}

func (h *handler) content(w http.ResponseWriter, r *http.Request) {
	if !h.rawDevice(w, r) {
		return
	}
	id, err := pathID(r)
	if err != nil {
		writeError(w, err)
		return
	}
	c := h.a.c
	m, err := c.AttachmentMessage(r.Context(), id)
	if err != nil {
		writeError(w, err)
		return
	}
	var name, typ string
	if a := m.Attachment; a != nil {
		name, typ = a.Name, a.ContentType
	}
	streamFile(w, name, typ, func(dst io.Writer) error {
		_, _, err := c.Download(r.Context(), id, client.DownloadOptions{Stream: dst})
		return err
	})
}

func (h *handler) search(r *http.Request, c *client.Client) (any, error) {
	limit, err := intParam(r, "limit", 20)
	if err != nil {
		return nil, err
	}
	ms, err := c.Search(r.Context(), r.URL.Query().Get("q"), limit)
	if err != nil {
		return nil, err
	}
	return api.MessagesAnswer{Messages: api.FromMessages(ms)}, nil
}

func (h *handler) contacts(r *http.Request, c *client.Client) (any, error) {
	cs, err := c.Contacts(r.Context())
	if err != nil {
		return nil, err
	}
	out := api.ContactsAnswer{Contacts: []api.Contact{}}
	for _, ct := range cs {
		member, err := c.IsMember(r.Context(), ct.User)
		if err != nil {
			member = false
		}
		revoked, err := c.Revoked(r.Context(), ct.User)
		if err != nil {
			return nil, err
		}
		out.Contacts = append(out.Contacts, api.Contact{User: ct.User, Verified: ct.Verified, Changed: ct.Changed, Member: member, Revoked: revoked})
	}
	return out, nil
}

func (h *handler) safetyNumber(r *http.Request, c *client.Client) (any, error) {
	sn, err := c.SafetyNumber(r.Context(), r.PathValue("user"))
	if err != nil {
		return nil, err
	}
	return api.FromSafetyNumber(sn), nil
}

func (h *handler) verify(r *http.Request, c *client.Client) (any, error) {
	return nil, c.Verify(r.Context(), r.PathValue("user"))
}

// revoke takes user's sealed access to this account away (client.RevokeContact:
// a new profile key user is never given, shared with the account's own devices).
func (h *handler) revoke(r *http.Request, c *client.Client) (any, error) {
	return nil, c.RevokeContact(r.Context(), r.PathValue("user"))
}

// restore gives it back (client.RestoreContact).
func (h *handler) restore(r *http.Request, c *client.Client) (any, error) {
	return nil, c.RestoreContact(r.Context(), r.PathValue("user"))
}

// auditKeyLog audits the key log's new leaves (client.AuditKeyLog); an
// alarm it raises also goes out as an event.
func (h *handler) auditKeyLog(r *http.Request, c *client.Client) (any, error) {
	n, err := c.AuditKeyLog(r.Context())
	if err != nil {
		return nil, err
	}
	return api.AuditAnswer{Audited: n}, nil
}

func (h *handler) devices(r *http.Request, c *client.Client) (any, error) {
	ds, err := c.Devices(r.Context())
	if err != nil {
		return nil, err
	}
	out := api.DevicesAnswer{Devices: []api.Device{}}
	for _, d := range ds {
		out.Devices = append(out.Devices, api.Device{ID: d.ID, Name: d.Name, Created: d.Created, LastSeen: d.LastSeen, Current: d.Current})
	}
	return out, nil
}

func pathDevice(r *http.Request) (uint32, error) {
	id, err := strconv.ParseUint(r.PathValue("device"), 10, 32)
	if err != nil || id == 0 {
		return 0, badRequest("bad device id %q", r.PathValue("device"))
	}
	return uint32(id), nil
}

func (h *handler) removeDevice(r *http.Request, c *client.Client) (any, error) {
	id, err := pathDevice(r)
	if err != nil {
		return nil, err
	}
	return nil, c.RemoveDevice(r.Context(), id)
}

func (h *handler) wipeDevice(r *http.Request, c *client.Client) (any, error) {
	id, err := pathDevice(r)
	if err != nil {
		return nil, err
	}
	return nil, c.WipeDevice(r.Context(), id)
}

func settingsOf(ctx context.Context, c *client.Client, s client.Settings) (*api.Settings, error) {
	out := &api.Settings{ReadReceipts: &s.ReadReceipts, Typing: &s.Typing, SealedFallback: &s.SealedFallback, GroupReceipts: &s.GroupReceipts}
	p, err := c.OrgPolicy(ctx)
	if err != nil {
		return nil, err
	}
	out.SealedOnly = !p.SealedFallbackAllowed()
	if out.SealedDowngrades, err = c.SealedDowngrades(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

func (h *handler) settings(r *http.Request, c *client.Client) (any, error) {
	s, err := c.Settings(r.Context())
	if err != nil {
		return nil, err
	}
	return settingsOf(r.Context(), c, s)
}

func (h *handler) setSettings(r *http.Request, c *client.Client) (any, error) {
	var req api.Settings
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	s, err := c.Settings(r.Context())
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		v   *bool
		dst *bool
	}{{req.ReadReceipts, &s.ReadReceipts}, {req.Typing, &s.Typing}, {req.SealedFallback, &s.SealedFallback}, {req.GroupReceipts, &s.GroupReceipts}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if err := c.SetSettings(r.Context(), s); err != nil {
		return nil, err
	}
	return settingsOf(r.Context(), c, s)
}

func (h *handler) notices(r *http.Request, c *client.Client) (any, error) {
	ns, err := c.Notices(r.Context())
	if err != nil {
		return nil, err
	}
	if ns == nil {
		ns = []client.Notice{}
	}
	rejected, err := c.OrgRejected(r.Context())
	if err != nil {
		return nil, err
	}
	return api.NoticesAnswer{Notices: ns, Rejected: rejected}, nil
}

// eventStream serves GET /v1/events (server-sent events).
func (h *handler) eventStream(w http.ResponseWriter, r *http.Request) {
	replay := false
	var since uint64
	s := r.URL.Query().Get("since")
	if s == "" {
		s = r.Header.Get("Last-Event-ID")
	}
	if s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, badRequest("bad since %q", s))
			return
		}
		replay, since = true, n
	}
	backlog, ch, cancel := h.a.events.subscribe(replay, since)
	defer cancel()
	out, ok := startSSE(w)
	if !ok {
		return
	}
	write := func(e api.Event) error { return out.event(strconv.FormatUint(e.Seq, 10), string(e.Type), e) }
	for _, e := range backlog {
		if write(e) != nil {
			return
		}
	}
	// What was published before the agent stopped (a wipe) goes out.
	stream(r.Context(), out, ch, h.a.stop, write)
}
