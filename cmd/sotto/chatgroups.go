package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/attach"
	"sotto/cmd/sotto/internal/tui"
)

// The chat app's groups (tui.GroupDevice), through the agent.

func (d *agentDevice) Groups(ctx context.Context) ([]tui.Group, error) {
	gs, err := d.api.Groups(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]tui.Group, 0, len(gs))
	for _, g := range gs {
		out = append(out, tui.Group{ID: g.ID, Name: g.Name, Description: g.Description, Announce: g.Policy != nil && g.Policy.Announce})
	}
	return out, nil
}

func (d *agentDevice) GroupHistory(ctx context.Context, id []byte, limit int) ([]*client.Message, error) {
	ms, err := d.api.GroupMessages(ctx, id, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*client.Message, 0, len(ms))
	for _, m := range ms {
		cm := m.Client()
		if m.Outgoing {
			cm.From = d.user
		}
		out = append(out, cm)
	}
	return out, nil
}

func (d *agentDevice) GroupSend(ctx context.Context, id []byte, text string, quote []byte) error {
	_, err := d.api.ReplyGroup(ctx, id, text, quote)
	return err
}

func (d *agentDevice) GroupReact(ctx context.Context, id, msg []byte, emoji string) error {
	_, err := d.api.ReactGroup(ctx, id, msg, emoji)
	return err
}

func (d *agentDevice) GroupEdit(ctx context.Context, id, msg []byte, text string) error {
	_, err := d.api.EditGroup(ctx, id, msg, text)
	return err
}

func (d *agentDevice) GroupDelete(ctx context.Context, id, msg []byte) error {
	_, err := d.api.DeleteGroupMessage(ctx, id, msg)
	return err
}

func (d *agentDevice) GroupTimer(ctx context.Context, id []byte, t time.Duration) error {
	_, err := d.api.SetGroupTimer(ctx, id, t)
	return err
}

// GroupSendFile shares a file with a group; the agent reads it, so it is
// named by its absolute path.
func (d *agentDevice) GroupSendFile(ctx context.Context, id []byte, path, caption string) error {
	abs, err := absFile(path)
	if err != nil {
		return err
	}
	_, err = d.api.SendGroupFile(ctx, id, api.GroupFileRequest{Path: abs, Caption: caption})
	return err
}

// GroupDownload saves a group file under its (neutralized) name in dir,
// or in the device's attachments folder; a file of that name there is
// not replaced.
func (d *agentDevice) GroupDownload(ctx context.Context, id []byte, msg *client.Message, dir string) (string, error) {
	if msg.Attachment == nil {
		return "", client.ErrGroupNoFile
	}
	if dir == "" {
		st, err := d.api.Status(ctx)
		if err != nil {
			return "", err
		}
		dir = filepath.Join(st.Home, "attachments")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	a, err := d.api.DownloadGroupFile(ctx, id, msg.ID, filepath.Join(dir, attach.SafeName(msg.Attachment.Name)))
	if err != nil {
		return "", err
	}
	return a.Path, nil
}

func (d *agentDevice) GroupMarkRead(ctx context.Context, id []byte) error {
	_, err := d.api.MarkGroupRead(ctx, id)
	return err
}

func (d *agentDevice) GroupRename(ctx context.Context, id []byte, name string) error {
	_, err := d.api.RenameGroup(ctx, id, name, nil)
	return err
}

// GroupDescribe sets a group's description (rename keeps its name).
func (d *agentDevice) GroupDescribe(ctx context.Context, id []byte, description string) error {
	g, err := d.api.Group(ctx, id)
	if err != nil {
		return err
	}
	_, err = d.api.RenameGroup(ctx, id, g.Name, &description)
	return err
}

func (d *agentDevice) GroupSetAdmin(ctx context.Context, id []byte, user string, admin bool) error {
	_, err := d.api.SetGroupAdmins(ctx, id, []string{user}, admin)
	return err
}

func (d *agentDevice) GroupAnnounce(ctx context.Context, id []byte, announce bool) error {
	_, err := d.api.SetGroupAnnounce(ctx, id, announce)
	return err
}

func (d *agentDevice) GroupLeave(ctx context.Context, id []byte) error {
	return d.api.LeaveGroup(ctx, id)
}

func (d *agentDevice) GroupMembers(ctx context.Context, id []byte) ([]tui.GroupMember, error) {
	ms, err := d.api.GroupMembers(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]tui.GroupMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, tui.GroupMember{User: m.User, Devices: len(m.Devices), Admin: m.Admin, Verification: m.Verification})
	}
	return out, nil
}

// groupEvent is the chat app's event for an agent's group event: the app
// reloads; a refused change or message is shown.
func groupEvent(ev *api.Event) (client.Event, bool) {
	switch ev.Type {
	case api.EventGroupMessage, api.EventGroupUpdate:
		return client.Event{Kind: client.EventMessage}, true
	case api.EventGroupRefused:
		return client.Event{Kind: client.EventError, Err: errors.New("group: " + ev.Detail)}, true
	}
	return client.Event{}, false
}
