package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"sotto/client/groups"
)

// Group is a group chat this device is in (GET /v1/groups).
type Group struct {
	ID ID `json:"id"`
	// Name is the group's name, in its encrypted group context (the
	// same for every member); for a group made before names were there,
	// the name its creator gave it on that device only.
	Name    string        `json:"name,omitempty"`
	Epoch   uint64        `json:"epoch"`
	Members []GroupMember `json:"members"`
	// The group's policy (grouppolicy.go); Policy nil: a group made
	// before policies, where every member may do everything.
	Description string       `json:"description,omitempty"`
	Policy      *GroupPolicy `json:"policy,omitempty"`
}

// GroupMember is one member device of a group.
type GroupMember struct {
	User   string `json:"user"`
	Device uint32 `json:"device"`
}

// FromGroup converts the client core's group info.
func FromGroup(info *groups.Info) *Group {
	g := &Group{ID: info.ID, Name: info.Name, Epoch: info.Epoch, Members: []GroupMember{}, Policy: fromPolicy(info.Policy)}
	if info.Policy != nil {
		g.Description = info.Policy.Description
	}
	for _, m := range info.Members {
		g.Members = append(g.Members, GroupMember{User: m.Username, Device: m.DeviceID})
	}
	return g
}

// Users lists each member user once, in leaf order.
func (g *Group) Users() []string {
	var out []string
	seen := map[string]bool{}
	for _, m := range g.Members {
		if !seen[m.User] {
			seen[m.User] = true
			out = append(out, m.User)
		}
	}
	return out
}

// GroupMessage is a group message, received or sent by this device.
type GroupMessage struct {
	Group ID `json:"group"`
	// Seq is the message's place in its group, the same for every
	// member (the relay's order).
	Seq        uint64    `json:"seq"`
	From       string    `json:"from"`
	FromDevice uint32    `json:"from_device"`
	Outgoing   bool      `json:"outgoing,omitempty"`
	Text       string    `json:"text"`
	Received   time.Time `json:"received"`
	ServerTime time.Time `json:"server_time,omitzero"`
	GroupMessageFeatures
}

// FromGroupMessage converts the client core's group message.
func FromGroupMessage(m *groups.Message) *GroupMessage {
	return &GroupMessage{Group: m.Group, Seq: m.Seq, From: m.From, FromDevice: m.Device, Outgoing: m.Outgoing,
		Text: m.Text, Received: m.Received, ServerTime: m.ServerTime, GroupMessageFeatures: groupFeatures(m)}
}

// FromGroupMessages converts a list of group messages.
func FromGroupMessages(ms []groups.Message) []*GroupMessage {
	out := make([]*GroupMessage, 0, len(ms))
	for i := range ms {
		out = append(out, FromGroupMessage(&ms[i]))
	}
	return out
}

// Group request and answer bodies.
type (
	GroupCreateRequest struct {
		Name        string   `json:"name"`
		Users       []string `json:"users"`
		Description string   `json:"description,omitempty"`
		// Announce: only admins post.
		Announce bool `json:"announce,omitempty"`
		// MembersMay: what every member may do ("add", "remove",
		// "rename"); the rest is the admins'.
		MembersMay []string `json:"members_may,omitempty"`
	}
	GroupUsersRequest struct {
		Users []string `json:"users"`
	}
	GroupJoinRequest struct {
		ID ID `json:"id"`
	}
	GroupSendRequest struct {
		Text string `json:"text"`
		// QuoteID: the message this one replies to.
		QuoteID ID `json:"quote_id,omitempty"`
	}
	GroupAnswer struct {
		Group *Group `json:"group"`
	}
	GroupsAnswer struct {
		Groups []*Group `json:"groups"`
	}
	GroupMessageAnswer struct {
		Message *GroupMessage `json:"message"`
	}
	GroupMessagesAnswer struct {
		Messages []*GroupMessage `json:"messages"`
	}
)

// Group change kinds (event group_update, field change).
const (
	GroupJoined  = "joined"
	GroupRemoved = "removed"
	GroupChanged = "changed"
)

func groupPath(id ID, rest string) string {
	b, _ := id.MarshalText()
	return "/groups/" + string(b) + rest
}

// Groups lists the groups this device is in.
func (c *Client) Groups(ctx context.Context) ([]*Group, error) {
	var a GroupsAnswer
	return a.Groups, c.Do(ctx, http.MethodGet, "/groups", nil, &a)
}

// Group returns one group.
func (c *Client) Group(ctx context.Context, id ID) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodGet, groupPath(id, ""), nil, &a)
}

// CreateGroup creates a group with this user's devices and every device
// of users.
func (c *Client) CreateGroup(ctx context.Context, name string, users []string) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodPost, "/groups", GroupCreateRequest{Name: name, Users: users}, &a)
}

// AddToGroup adds every device of users to a group.
func (c *Client) AddToGroup(ctx context.Context, id ID, users []string) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodPost, groupPath(id, "/add"), GroupUsersRequest{Users: users}, &a)
}

// RemoveFromGroup removes every device of users from a group.
func (c *Client) RemoveFromGroup(ctx context.Context, id ID, users []string) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodPost, groupPath(id, "/remove"), GroupUsersRequest{Users: users}, &a)
}

// JoinGroup joins, from this device, a group another device of this user
// is in (by external commit).
func (c *Client) JoinGroup(ctx context.Context, id ID) (*Group, error) {
	var a GroupAnswer
	return a.Group, c.Do(ctx, http.MethodPost, "/groups/join", GroupJoinRequest{ID: id}, &a)
}

// SendGroup sends text to a group.
func (c *Client) SendGroup(ctx context.Context, id ID, text string) (*GroupMessage, error) {
	var a GroupMessageAnswer
	return a.Message, c.Do(ctx, http.MethodPost, groupPath(id, "/messages"), GroupSendRequest{Text: text}, &a)
}

// GroupMessages returns the last limit messages of a group (0: all),
// oldest first.
func (c *Client) GroupMessages(ctx context.Context, id ID, limit int) ([]*GroupMessage, error) {
	var a GroupMessagesAnswer
	return a.Messages, c.Do(ctx, http.MethodGet, groupPath(id, "/messages?limit="+strconv.Itoa(limit)), nil, &a)
}

// SyncGroups has the agent fetch what the relay holds for its groups now,
// and returns the messages this fetch took in.
func (c *Client) SyncGroups(ctx context.Context) ([]*GroupMessage, error) {
	var a GroupMessagesAnswer
	return a.Messages, c.Do(ctx, http.MethodPost, "/groups/sync", nil, &a)
}
