package agent

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/groups"
)

// The agent owns the device's group chats (client/groups): while it is
// connected, groupLoop syncs on the relay's GroupWaiting pushes; every
// sync, the loop's or a request's, publishes what it took in as events.

// groups returns the device's group manager (made on first use, with the
// agent's event hook).
func (a *Agent) groups(ctx context.Context) (*groups.Manager, error) {
	return a.c.Groups(ctx, a.onGroupEvent)
}

// onGroupEvent publishes an event of client/groups. It runs under the
// manager's state lock: it must not call the manager.
func (a *Agent) onGroupEvent(ev groups.Event) {
	e := api.Event{Type: api.EventGroupUpdate, Group: ev.Group, Detail: ev.Detail}
	switch ev.Kind {
	case groups.EventRefused, groups.EventNotAllowed:
		e.Type = api.EventGroupRefused
	case groups.EventJoined:
		e.Change = api.GroupJoined
	case groups.EventRemoved:
		e.Change = api.GroupRemoved
	case groups.EventChanged:
		e.Change = api.GroupChanged
	case groups.EventForked:
		e.Change = api.GroupForked
	case groups.EventWithheld:
		e.Change = api.GroupWithheld
	case groups.EventRejoined:
		e.Change = api.GroupRejoined
	case groups.EventRecovered:
		e.Change = api.GroupRecovered
	default:
		return
	}
	a.events.publish(e)
}

// publishGroupMessages publishes messages a sync took in.
func (a *Agent) publishGroupMessages(ms []groups.Message) {
	for i := range ms {
		a.events.publish(api.Event{Type: api.EventGroupMessage, GroupMessage: api.FromGroupMessage(&ms[i])})
	}
}

// syncGroups fetches what the relay holds for the device's groups and
// publishes the messages it took in (also those of a sync that failed
// part way).
func (a *Agent) syncGroups(ctx context.Context) ([]groups.Message, error) {
	m, err := a.groups(ctx)
	if err != nil {
		return nil, err
	}
	ms, err := m.Sync(ctx)
	a.publishGroupMessages(ms)
	return ms, err
}

// groupRetry is how long groupLoop waits after a failed round.
const groupRetry = time.Second

// groupLoop keeps the device's groups synced while it is connected: a
// sync when the connection opens, then one per GroupWaiting push.
func (a *Agent) groupLoop(ctx context.Context) error {
	for {
		a.mu.Lock()
		online := a.online
		a.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-online:
		}
		err := a.watchGroups(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, client.ErrNoOrg) || errors.Is(err, client.ErrNotCertified) {
			// No groups for this device: nothing to do until the next
			// connection (an organization may have certified it since).
			a.log.Debug("no group chats on this device", "err", err)
			if done := a.c.Done(); done != nil {
				select {
				case <-ctx.Done():
					return nil
				case <-done:
				}
			}
		} else if errors.Is(err, groups.ErrConnectionEnded) || errors.Is(err, client.ErrNotConnected) {
			a.log.Debug("group sync: the connection ended", "err", err)
		} else if err != nil {
			a.log.Warn("group sync", "err", err)
		}
		t := time.NewTimer(groupRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (a *Agent) watchGroups(ctx context.Context) error {
	m, err := a.groups(ctx)
	if err != nil {
		return err
	}
	return m.Watch(ctx, a.publishGroupMessages)
}

// freshGroups brings the groups up to date before a request reads them,
// when nothing else does: an agent hosted by a one-shot command (not
// running its loops) that is connected. A failure leaves what is stored.
func (h *handler) freshGroups(ctx context.Context) {
	h.a.mu.Lock()
	running := h.a.running
	h.a.mu.Unlock()
	if running || h.a.c.Done() == nil {
		return
	}
	if _, err := h.a.syncGroups(ctx); err != nil {
		h.a.log.Debug("group sync before a read", "err", err)
	}
}

// groupsOnline is online for the group endpoints that change something:
// what waits at the relay is taken in first (a Welcome that brings the
// group, a commit a new one must build on).
func (h *handler) groupsOnline(fn func(*http.Request, *groups.Manager) (any, error)) http.HandlerFunc {
	return h.online(func(r *http.Request, _ *client.Client) (any, error) {
		if _, err := h.a.syncGroups(r.Context()); err != nil {
			return nil, err
		}
		m, err := h.a.groups(r.Context())
		if err != nil {
			return nil, err
		}
		return fn(r, m)
	})
}

// groupsLocal is device for the group endpoints that read the store.
func (h *handler) groupsLocal(fn func(*http.Request, *groups.Manager) (any, error)) http.HandlerFunc {
	return h.device(func(r *http.Request, _ *client.Client) (any, error) {
		h.freshGroups(r.Context())
		m, err := h.a.groups(r.Context())
		if err != nil {
			return nil, err
		}
		return fn(r, m)
	})
}

func routeGroups(mux *http.ServeMux, h *handler) {
	p := api.Prefix
	mux.HandleFunc("GET "+p+"/groups", h.groupsLocal(h.groupList))
	mux.HandleFunc("POST "+p+"/groups", h.groupsOnline(h.groupCreate))
	mux.HandleFunc("POST "+p+"/groups/sync", h.online(h.groupSync))
	mux.HandleFunc("POST "+p+"/groups/join", h.groupsOnline(h.groupJoin))
	mux.HandleFunc("GET "+p+"/groups/{group}", h.groupsLocal(h.groupGet))
	mux.HandleFunc("POST "+p+"/groups/{group}/add", h.groupsOnline(h.groupAdd))
	mux.HandleFunc("POST "+p+"/groups/{group}/remove", h.groupsOnline(h.groupRemove))
	mux.HandleFunc("GET "+p+"/groups/{group}/messages", h.groupsLocal(h.groupMessages))
	mux.HandleFunc("POST "+p+"/groups/{group}/messages", h.groupsOnline(h.groupSend))
	routeGroupPolicy(mux, h)
	routeGroupMessages(mux, h)
}

func pathGroup(r *http.Request) (api.ID, error) {
	id, err := api.ParseID(r.PathValue("group"))
	if err != nil {
		return nil, badRequest("bad group id %q", r.PathValue("group"))
	}
	return id, nil
}

func groupAnswer(ctx context.Context, m *groups.Manager, id []byte) (any, error) {
	info, err := m.Info(ctx, id)
	if err != nil {
		return nil, err
	}
	return api.GroupAnswer{Group: api.FromGroup(info)}, nil
}

func (h *handler) groupList(r *http.Request, m *groups.Manager) (any, error) {
	infos, err := m.List(r.Context())
	if err != nil {
		return nil, err
	}
	out := api.GroupsAnswer{Groups: []*api.Group{}}
	for i := range infos {
		out.Groups = append(out.Groups, api.FromGroup(&infos[i]))
	}
	return out, nil
}

func (h *handler) groupGet(r *http.Request, m *groups.Manager) (any, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	return groupAnswer(r.Context(), m, id)
}

// users checks a list of usernames.
func users(us []string) ([]string, error) {
	var out []string
	for _, u := range us {
		u = strings.TrimSpace(u)
		if u == "" {
			return nil, badRequest("empty username")
		}
		out = append(out, u)
	}
	return out, nil
}

func (h *handler) groupCreate(r *http.Request, m *groups.Manager) (any, error) {
	var req api.GroupCreateRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	us, err := users(req.Users)
	if err != nil {
		return nil, err
	}
	id, err := m.CreateGroup(r.Context(), groups.CreateOptions{Name: req.Name, Description: req.Description, Users: us,
		Announce: req.Announce, MembersMay: req.MembersMay})
	if err != nil {
		return nil, err
	}
	return groupAnswer(r.Context(), m, id)
}

func (h *handler) groupUsers(r *http.Request) (api.ID, []string, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, nil, err
	}
	var req api.GroupUsersRequest
	if err := decode(r, &req); err != nil {
		return nil, nil, err
	}
	us, err := users(req.Users)
	if err == nil && len(us) == 0 {
		err = badRequest("no users")
	}
	return id, us, err
}

func (h *handler) groupAdd(r *http.Request, m *groups.Manager) (any, error) {
	id, us, err := h.groupUsers(r)
	if err != nil {
		return nil, err
	}
	if err := m.Add(r.Context(), id, us...); err != nil {
		return nil, err
	}
	return groupAnswer(r.Context(), m, id)
}

func (h *handler) groupRemove(r *http.Request, m *groups.Manager) (any, error) {
	id, us, err := h.groupUsers(r)
	if err != nil {
		return nil, err
	}
	if err := m.Remove(r.Context(), id, us...); err != nil {
		return nil, err
	}
	return groupAnswer(r.Context(), m, id)
}

func (h *handler) groupJoin(r *http.Request, m *groups.Manager) (any, error) {
	var req api.GroupJoinRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if len(req.ID) == 0 {
		return nil, badRequest("missing group id")
	}
	if err := m.JoinExternal(r.Context(), req.ID); err != nil {
		return nil, err
	}
	return groupAnswer(r.Context(), m, req.ID)
}

func (h *handler) groupSend(r *http.Request, m *groups.Manager) (any, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupSendRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Text == "" {
		return nil, badRequest("empty text")
	}
	msg, err := m.SendText(r.Context(), id, req.Text, groups.SendOptions{QuoteID: req.QuoteID})
	if err != nil {
		return nil, err
	}
	return api.GroupMessageAnswer{Message: api.FromGroupMessage(msg)}, nil
}

func (h *handler) groupMessages(r *http.Request, m *groups.Manager) (any, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit", 50)
	if err != nil {
		return nil, err
	}
	ms, err := m.Messages(r.Context(), id, limit)
	if err != nil {
		return nil, err
	}
	return api.GroupMessagesAnswer{Messages: api.FromGroupMessages(ms)}, nil
}

func (h *handler) groupSync(r *http.Request, _ *client.Client) (any, error) {
	ms, err := h.a.syncGroups(r.Context())
	if err != nil {
		return nil, err
	}
	return api.GroupMessagesAnswer{Messages: api.FromGroupMessages(ms)}, nil
}
