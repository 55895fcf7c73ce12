package main

import (
	"context"
	"encoding/binary"
	"errors"

	"sotto/agent/api"
	"sotto/client"
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
		out = append(out, tui.Group{ID: g.ID, Name: g.Name, Announce: g.Policy != nil && g.Policy.Announce})
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
		from := m.From
		if m.Outgoing {
			from = d.user
		}
		mid := binary.BigEndian.AppendUint64(append([]byte("group"), m.Group...), m.Seq)
		out = append(out, &client.Message{ID: mid, From: from, FromDevice: m.FromDevice, Outgoing: m.Outgoing, Text: m.Text,
			SentAt: m.Received, ServerTime: m.ServerTime, Read: true, Delivered: m.Outgoing})
	}
	return out, nil
}

func (d *agentDevice) GroupSend(ctx context.Context, id []byte, text string) error {
	_, err := d.api.SendGroup(ctx, id, text)
	return err
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
