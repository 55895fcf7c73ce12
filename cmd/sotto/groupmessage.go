package main

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"sotto/agent/api"
	"sotto/internal/safetext"
)

// The group messaging commands: reply, react, edit, delete, attach,
// download, timer, read (through the agent, docs/agent-api.md).

var groupMessageCommands = map[string]bool{"reply": true, "react": true, "edit": true, "delete": true,
	"attach": true, "download": true, "timer": true, "read": true}

type msgOpts struct {
	caption, out string
}

func groupMessageCommand(e *env, cl *api.Client, sub string, rest []string, o msgOpts) error {
	g, err := findGroup(e, cl, rest[0])
	if err != nil {
		return err
	}
	switch sub {
	case "attach":
		if len(rest) > 2 {
			return fmt.Errorf("group attach: one FILE at a time (quote a --caption with spaces)")
		}
		path, err := filepath.Abs(rest[1])
		if err != nil {
			return err
		}
		m, err := cl.SendGroupFile(e.ctx, g, api.GroupFileRequest{Path: path, Caption: o.caption})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "sent %s (%s)\n", safetext.FileName(m.Attachment.Name), hex.EncodeToString(m.ID))
		return nil
	case "timer":
		var d time.Duration
		if rest[1] != "off" {
			if d, err = time.ParseDuration(rest[1]); err != nil || d <= 0 {
				return fmt.Errorf("bad duration %q (e.g. 30s, 5m, 1h, 168h, or off)", rest[1])
			}
		}
		if _, err := cl.SetGroupTimer(e.ctx, g, d); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "disappearing messages in %s: %s\n", safetext.Name(rest[0]), timerText(uint32(d/time.Second)))
		return nil
	case "read":
		n, err := cl.MarkGroupRead(e.ctx, g)
		if err == nil {
			fmt.Fprintf(e.stdout, "%d marked read\n", n)
		}
		return err
	}
	id, err := groupMsgID(e, cl, g, rest[1], sub == "edit" || sub == "delete", sub == "download")
	if err != nil {
		return err
	}
	text := strings.Join(rest[2:], " ")
	switch sub {
	case "reply":
		_, err = cl.ReplyGroup(e.ctx, g, text, id)
	case "react":
		_, err = cl.ReactGroup(e.ctx, g, id, text)
	case "edit":
		_, err = cl.EditGroup(e.ctx, g, id, text)
	case "delete":
		_, err = cl.DeleteGroupMessage(e.ctx, g, id)
	case "download":
		if o.out == "" {
			return fmt.Errorf("group download: --out PATH is required")
		}
		out, aerr := filepath.Abs(o.out)
		if aerr != nil {
			return aerr
		}
		a, derr := cl.DownloadGroupFile(e.ctx, g, id, out)
		if derr == nil {
			fmt.Fprintf(e.stdout, "saved %s\n", safetext.Line(a.Path))
		}
		err = derr
	}
	return err
}

// groupMsgID reads MSGID: hex, or "last" — the newest message still shown
// (the own one when own, another member's otherwise; with a file when
// file).
func groupMsgID(e *env, cl *api.Client, g api.ID, s string, own, file bool) (api.ID, error) {
	if s != "last" {
		return parseMsgID(s)
	}
	ms, err := cl.GroupMessages(e.ctx, g, 0)
	if err != nil {
		return nil, err
	}
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		if m.Kind == "" && !m.Deleted && len(m.ID) > 0 && m.Outgoing == own && (!file || m.Attachment != nil) {
			return m.ID, nil
		}
	}
	return nil, fmt.Errorf("no message to act on in this group")
}

// groupMessageText is how a group message is shown: its text (neutralized)
// with its reply, edit, file, reactions, receipts and timer marks.
func groupMessageText(m *api.GroupMessage) string {
	switch {
	case m.Kind == "timer":
		return fmt.Sprintf("(set disappearing messages: %s)", timerText(m.TimerSeconds))
	case m.Kind == "alert":
		return "(! " + safetext.Line(m.Text) + ")"
	case m.Deleted:
		return "(this message was deleted)"
	}
	t := safetext.Body(m.Text)
	if a := m.Attachment; a != nil {
		f := fmt.Sprintf("[file %s, %s, fetch with: sotto group download GROUP %s --out PATH]", safetext.FileName(a.Name), humanBytes(a.Size), hex.EncodeToString(m.ID))
		if t != "" {
			f += " " + t
		}
		t = f
	}
	if m.QuoteID != nil {
		t = fmt.Sprintf("(reply to %s) %s", hex.EncodeToString(m.QuoteID)[:8], t)
	}
	if len(m.Versions) > 1 {
		t += " (edited)"
	}
	if m.TimerSeconds > 0 {
		t += " (disappears)"
	}
	if len(m.Reactions) > 0 {
		var rs []string
		for _, r := range m.Reactions {
			rs = append(rs, safetext.Name(r.From)+" "+safetext.Line(r.Emoji))
		}
		t += " [" + strings.Join(rs, ", ") + "]"
	}
	if len(m.ReadBy) > 0 {
		t += " (read by " + names(m.ReadBy) + ")"
	} else if len(m.DeliveredTo) > 0 {
		t += " (delivered to " + names(m.DeliveredTo) + ")"
	}
	return t
}

func names(us []string) string {
	var out []string
	for _, u := range us {
		out = append(out, safetext.Name(u))
	}
	return strings.Join(out, ", ")
}
