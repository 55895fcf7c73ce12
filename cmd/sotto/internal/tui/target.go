package tui

import (
	"context"
	"errors"
	"time"

	"sotto/client"
)

// target is what the open chat's commands act on: a 1:1 peer (Device,
// Files) or a group (GroupDevice). submit runs /reply, /react, /edit,
// /delete, /file, /download and /timer through it, the same code for
// both.
type target interface {
	send(ctx context.Context, text string, quote []byte) error
	react(ctx context.Context, id []byte, emoji string) error
	edit(ctx context.Context, id []byte, text string) error
	remove(ctx context.Context, id []byte) error
	setTimer(ctx context.Context, d time.Duration) error
	// files reports whether the device sends and saves files here.
	files() bool
	sendFile(ctx context.Context, path, caption string, viewOnce bool) error
	download(ctx context.Context, msg *client.Message, dir string) (string, error)
}

// errNoFiles: the device has no file transfer for the chat app.
var errNoFiles = errors.New("this device cannot send or save files from the chat app")

// target is the open conversation's (nil: none open).
func (m *Model) target() target {
	if id := m.groupID(m.peer); id != nil {
		if gd, ok := m.c.(GroupDevice); ok {
			return groupTarget{gd, id}
		}
	}
	if m.peer == "" {
		return nil
	}
	return peerTarget{m.c, m.peer}
}

// peerTarget is a 1:1 conversation.
type peerTarget struct {
	c    Device
	peer string
}

func (p peerTarget) send(ctx context.Context, text string, quote []byte) error {
	_, err := p.c.SendText(ctx, p.peer, text, quote)
	return err
}

func (p peerTarget) react(ctx context.Context, id []byte, emoji string) error {
	return p.c.React(ctx, p.peer, id, emoji)
}

func (p peerTarget) edit(ctx context.Context, id []byte, text string) error {
	return p.c.Edit(ctx, p.peer, id, text)
}

func (p peerTarget) remove(ctx context.Context, id []byte) error {
	return p.c.DeleteForEveryone(ctx, p.peer, id)
}

func (p peerTarget) setTimer(ctx context.Context, d time.Duration) error {
	return p.c.SetTimer(ctx, p.peer, d)
}

func (p peerTarget) files() bool { _, ok := p.c.(Files); return ok }

func (p peerTarget) sendFile(ctx context.Context, path, caption string, viewOnce bool) error {
	f, ok := p.c.(Files)
	if !ok {
		return errNoFiles
	}
	_, err := f.SendFile(ctx, p.peer, path, caption, viewOnce)
	return err
}

func (p peerTarget) download(ctx context.Context, msg *client.Message, dir string) (string, error) {
	f, ok := p.c.(Files)
	if !ok {
		return "", errNoFiles
	}
	return f.Download(ctx, msg.ID, dir)
}

// groupTarget is a group chat.
type groupTarget struct {
	gd GroupDevice
	id []byte
}

func (g groupTarget) send(ctx context.Context, text string, quote []byte) error {
	return g.gd.GroupSend(ctx, g.id, text, quote)
}

func (g groupTarget) react(ctx context.Context, id []byte, emoji string) error {
	return g.gd.GroupReact(ctx, g.id, id, emoji)
}

func (g groupTarget) edit(ctx context.Context, id []byte, text string) error {
	return g.gd.GroupEdit(ctx, g.id, id, text)
}

func (g groupTarget) remove(ctx context.Context, id []byte) error {
	return g.gd.GroupDelete(ctx, g.id, id)
}

func (g groupTarget) setTimer(ctx context.Context, d time.Duration) error {
	return g.gd.GroupTimer(ctx, g.id, d)
}

func (g groupTarget) files() bool { return true }

func (g groupTarget) sendFile(ctx context.Context, path, caption string, viewOnce bool) error {
	if viewOnce {
		return errors.New("view-once files are not in group chats yet")
	}
	return g.gd.GroupSendFile(ctx, g.id, path, caption)
}

func (g groupTarget) download(ctx context.Context, msg *client.Message, dir string) (string, error) {
	return g.gd.GroupDownload(ctx, g.id, msg, dir)
}
