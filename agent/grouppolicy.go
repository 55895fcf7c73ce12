package agent

import (
	"net/http"
	"slices"

	"sotto/agent/api"
	"sotto/client/groups"
)

// The group policy endpoints (client/groups policy.go): rename, roles,
// announcement, leave, and the member list with each member's
// verification state.

func routeGroupPolicy(mux *http.ServeMux, h *handler) {
	p := api.Prefix
	mux.HandleFunc("POST "+p+"/groups/{group}/rename", h.groupsOnline(h.groupRename))
	mux.HandleFunc("POST "+p+"/groups/{group}/admins", h.groupsOnline(h.groupAdmins))
	mux.HandleFunc("POST "+p+"/groups/{group}/announce", h.groupsOnline(h.groupAnnounce))
	mux.HandleFunc("POST "+p+"/groups/{group}/leave", h.groupsOnline(h.groupLeave))
	mux.HandleFunc("GET "+p+"/groups/{group}/members", h.groupsLocal(h.groupMembers))
}

func (h *handler) groupRename(r *http.Request, m *groups.Manager) (any, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupRenameRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Name == "" {
		return nil, badRequest("empty name")
	}
	if err := m.Rename(r.Context(), id, req.Name); err != nil {
		return nil, err
	}
	if req.Description != nil {
		if err := m.Describe(r.Context(), id, *req.Description); err != nil {
			return nil, err
		}
	}
	return groupAnswer(r.Context(), m, id)
}

func (h *handler) groupAdmins(r *http.Request, m *groups.Manager) (any, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupAdminsRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	us, err := users(req.Users)
	if err == nil && len(us) == 0 {
		err = badRequest("no users")
	}
	if err != nil {
		return nil, err
	}
	if err := m.SetAdmin(r.Context(), id, req.Admin, us...); err != nil {
		return nil, err
	}
	return groupAnswer(r.Context(), m, id)
}

func (h *handler) groupAnnounce(r *http.Request, m *groups.Manager) (any, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	var req api.GroupAnnounceRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if err := m.SetAnnounce(r.Context(), id, req.Announce); err != nil {
		return nil, err
	}
	return groupAnswer(r.Context(), m, id)
}

func (h *handler) groupLeave(r *http.Request, m *groups.Manager) (any, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	return nil, m.Leave(r.Context(), id)
}

// groupMembers lists the member users with their devices, role, and the
// verification state of the 1:1 contact this device keeps for each.
func (h *handler) groupMembers(r *http.Request, m *groups.Manager) (any, error) {
	id, err := pathGroup(r)
	if err != nil {
		return nil, err
	}
	info, err := m.Info(r.Context(), id)
	if err != nil {
		return nil, err
	}
	contacts, err := h.a.c.Contacts(r.Context())
	if err != nil {
		return nil, err
	}
	state := map[string]string{}
	for _, c := range contacts {
		switch {
		case c.Changed:
			state[c.User] = api.VerificationChanged
		case c.Verified:
			state[c.User] = api.VerificationVerified
		default:
			state[c.User] = api.VerificationUnverified
		}
	}
	self := h.a.c.Username()
	out := api.GroupMembersAnswer{Members: []api.GroupMemberUser{}}
	for _, mb := range info.Members {
		i := slices.IndexFunc(out.Members, func(u api.GroupMemberUser) bool { return u.User == mb.Username })
		if i < 0 {
			v := state[mb.Username]
			switch {
			case mb.Username == self:
				v = api.VerificationSelf
			case v == "":
				v = api.VerificationUnknown
			}
			out.Members = append(out.Members, api.GroupMemberUser{User: mb.Username, Admin: info.Policy.IsAdmin(mb.Username), Verification: v})
			i = len(out.Members) - 1
		}
		out.Members[i].Devices = append(out.Members[i].Devices, mb.DeviceID)
	}
	return out, nil
}
