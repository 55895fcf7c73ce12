package api

import (
	"context"
	"net/http"

	"sotto/client/groups"
)

// GroupPolicy is a group's roles and rules (client/groups.Policy), in
// its encrypted group context: every member checks every change and
// message against it.
type GroupPolicy struct {
	Admins []string `json:"admins"`
	// Announce: only admins post.
	Announce bool `json:"announce,omitempty"`
	// MembersMay: what every member may do ("add", "remove", "rename");
	// the rest is the admins'.
	MembersMay []string `json:"members_may,omitempty"`
}

func fromPolicy(p *groups.Policy) *GroupPolicy {
	if p == nil {
		return nil
	}
	out := &GroupPolicy{Admins: append([]string{}, p.Admins...), Announce: p.Announce, MembersMay: p.MembersMay}
	return out
}

// GroupMemberUser is one member user of a group with their devices, role
// and verification state (GET /v1/groups/{group}/members).
type GroupMemberUser struct {
	User    string   `json:"user"`
	Devices []uint32 `json:"devices"`
	Admin   bool     `json:"admin"`
	// Verification is the 1:1 contact state this device holds for the
	// user: "you", "verified" (safety number compared), "unverified",
	// "changed" (their key changed since it was verified or first seen),
	// or "unknown" (no key held).
	Verification string `json:"verification"`
}

// Verification states of GroupMemberUser.
const (
	VerificationSelf       = "you"
	VerificationVerified   = "verified"
	VerificationUnverified = "unverified"
	VerificationChanged    = "changed"
	VerificationUnknown    = "unknown"
)

// Group policy request and answer bodies.
type (
	GroupRenameRequest struct {
		Name string `json:"name"`
		// Description, when not nil, is set too.
		Description *string `json:"description,omitempty"`
	}
	GroupAdminsRequest struct {
		Users []string `json:"users"`
		// Admin: make them admins (true) or plain members (false).
		Admin bool `json:"admin"`
	}
	GroupAnnounceRequest struct {
		Announce bool `json:"announce"`
	}
	GroupMembersAnswer struct {
		Members []GroupMemberUser `json:"members"`
	}
)

// CreateGroupWith creates a group as req says.
func (c *Client) CreateGroupWith(ctx context.Context, req GroupCreateRequest) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodPost, "/groups", req, &a)
}

// RenameGroup sets a group's name (and description, when not nil).
func (c *Client) RenameGroup(ctx context.Context, id ID, name string, description *string) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodPost, groupPath(id, "/rename"), GroupRenameRequest{Name: name, Description: description}, &a)
}

// SetGroupAdmins makes users admins of a group, or plain members.
func (c *Client) SetGroupAdmins(ctx context.Context, id ID, users []string, admin bool) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodPost, groupPath(id, "/admins"), GroupAdminsRequest{Users: users, Admin: admin}, &a)
}

// SetGroupAnnounce makes a group an announcement group (only admins
// post), or lets every member post.
func (c *Client) SetGroupAnnounce(ctx context.Context, id ID, announce bool) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodPost, groupPath(id, "/announce"), GroupAnnounceRequest{Announce: announce}, &a)
}

// LeaveGroup takes this user (all their devices) out of a group.
func (c *Client) LeaveGroup(ctx context.Context, id ID) error {
	return c.Do(ctx, http.MethodPost, groupPath(id, "/leave"), nil, nil)
}

// GroupMembers lists a group's member users with their devices, roles
// and verification state.
func (c *Client) GroupMembers(ctx context.Context, id ID) ([]GroupMemberUser, error) {
	var a GroupMembersAnswer
	return a.Members, c.Do(ctx, http.MethodGet, groupPath(id, "/members"), nil, &a)
}
