package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/internal/safetext"
)

// parseMsgID reads a message id as printed by history --json and listen --json.
func parseMsgID(s string) ([]byte, error) {
	id, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(id) != 16 {
		return nil, fmt.Errorf("bad message id %q (32 hex digits, as history --json prints)", s)
	}
	return id, nil
}

// msgCommand runs fn through the agent for `CMD USER MSGID [ARGS...]`;
// MSGID "last" names the newest message of the conversation (the newest
// own one when own, else the newest from USER).
func msgCommand(e *env, name string, args []string, minArgs int, own bool, fn func(s *session, user string, id []byte, rest []string) error) error {
	fs := e.flagSet(name)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < minArgs {
		return errUsage
	}
	var id []byte
	if pos[1] != "last" {
		if id, err = parseMsgID(pos[1]); err != nil {
			return err
		}
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	if id == nil {
		if id, err = lastID(e, s, pos[0], own); err != nil {
			return err
		}
	}
	return agentError(e, fn(s, pos[0], id, pos[2:]))
}

// lastID finds the newest message of the conversation with user that is
// still shown: the newest own one when own, else the newest from user.
func lastID(e *env, s *session, user string, own bool) ([]byte, error) {
	hist, err := s.api.History(e.ctx, user, 0)
	if err != nil {
		return nil, agentError(e, err)
	}
	for i := len(hist) - 1; i >= 0; i-- {
		m := hist[i]
		if m.Kind == "" && !m.Deleted && m.Outgoing == own {
			return m.ID, nil
		}
	}
	return nil, fmt.Errorf("no message to act on with %s", user)
}

// cmdReact: react USER MSGID EMOJI (an empty EMOJI, "", withdraws it).
func cmdReact(e *env, args []string) error {
	return msgCommand(e, "react", args, 3, false, func(s *session, user string, id []byte, rest []string) error {
		return s.api.React(e.ctx, user, id, strings.Join(rest, " "))
	})
}

// cmdEdit: edit USER MSGID TEXT...
func cmdEdit(e *env, args []string) error {
	return msgCommand(e, "edit", args, 3, true, func(s *session, user string, id []byte, rest []string) error {
		return s.api.Edit(e.ctx, user, id, strings.Join(rest, " "))
	})
}

// cmdDelete: delete USER MSGID (for everyone).
func cmdDelete(e *env, args []string) error {
	return msgCommand(e, "delete", args, 2, true, func(s *session, user string, id []byte, _ []string) error {
		return s.api.Delete(e.ctx, user, id)
	})
}

// cmdReply: reply USER MSGID TEXT...
func cmdReply(e *env, args []string) error {
	return msgCommand(e, "reply", args, 3, false, func(s *session, user string, id []byte, rest []string) error {
		a, err := s.api.Send(e.ctx, user, strings.Join(rest, " "), id)
		if err == nil {
			noteDowngrade(e, a, user)
		}
		return err
	})
}

// cmdTimer: timer USER DURATION|off
func cmdTimer(e *env, args []string) error {
	fs := e.flagSet("timer")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errUsage
	}
	var d time.Duration
	if pos[1] != "off" {
		if d, err = time.ParseDuration(pos[1]); err != nil || d <= 0 {
			return fmt.Errorf("bad duration %q (e.g. 30s, 5m, 1h, 168h, or off)", pos[1])
		}
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.api.SetTimer(e.ctx, pos[0], d); err != nil {
		return agentError(e, err)
	}
	fmt.Fprintf(e.stdout, "disappearing messages with %s: %s\n", safetext.Name(pos[0]), timerText(uint32(d/time.Second)))
	return nil
}

func timerText(secs uint32) string {
	if secs == 0 {
		return "off"
	}
	return (time.Duration(secs) * time.Second).String()
}

// cmdSettings: settings [read-receipts on|off] [typing on|off] [sealed-fallback on|off]
func cmdSettings(e *env, args []string) error {
	fs := e.flagSet("settings")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos)%2 != 0 {
		return errUsage
	}
	var change api.Settings
	for i := 0; i < len(pos); i += 2 {
		var on bool
		switch pos[i+1] {
		case "on":
			on = true
		case "off":
		default:
			return fmt.Errorf("settings: %s must be on or off", pos[i])
		}
		switch pos[i] {
		case "read-receipts":
			change.ReadReceipts = &on
		case "typing":
			change.Typing = &on
		case "sealed-fallback":
			change.SealedFallback = &on
		case "group-receipts":
			change.GroupReceipts = &on
		default:
			return fmt.Errorf("settings: unknown setting %q (read-receipts, typing, sealed-fallback, group-receipts)", pos[i])
		}
	}
	s, err := e.session(false)
	if err != nil {
		return err
	}
	defer s.close()
	var st *api.Settings
	if len(pos) > 0 {
		st, err = s.api.SetSettings(e.ctx, change)
	} else {
		st, err = s.api.Settings(e.ctx)
	}
	if err != nil {
		return agentError(e, err)
	}
	on := func(b *bool) string { return onOff(b != nil && *b) }
	fmt.Fprintf(e.stdout, "read-receipts %s\ntyping %s\nsealed-fallback %s\ngroup-receipts %s\n", on(st.ReadReceipts), on(st.Typing), on(st.SealedFallback), on(st.GroupReceipts))
	if st.SealedOnly {
		fmt.Fprintln(e.stdout, "(the organization's policy is sealed only: no fallback whatever this setting says)")
	}
	fmt.Fprintf(e.stdout, "sealed downgrades %d\n", st.SealedDowngrades)
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// cmdSearch: search [--json] [--limit N] TEXT...
func cmdSearch(e *env, args []string) error {
	fs := e.flagSet("search")
	asJSON := fs.Bool("json", false, "print messages as JSON lines")
	limit := fs.Int("limit", 0, "show at most `N` messages (0: all)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errUsage
	}
	s, err := e.session(false)
	if err != nil {
		return err
	}
	defer s.close()
	found, err := s.api.Search(e.ctx, strings.Join(pos, " "), *limit)
	if err != nil {
		return agentError(e, err)
	}
	for _, m := range found {
		printMessage(e, m.Client(), *asJSON)
	}
	if len(found) == 0 && !*asJSON {
		return errors.New("no message matches")
	}
	return nil
}

// jsonMessaging holds the messaging fields of a JSON line (embedded in
// jsonMessage, so they appear at its top level).
type jsonMessaging struct {
	Event     string            `json:"event,omitempty"` // "update", "expired", "typing"; empty for a new message
	Kind      string            `json:"kind,omitempty"`  // "timer" for a timer change
	Timer     *uint32           `json:"timer_seconds,omitempty"`
	QuoteID   string            `json:"quote_id,omitempty"`
	Edited    bool              `json:"edited,omitempty"`
	Versions  []string          `json:"versions,omitempty"` // every text, oldest first
	Deleted   bool              `json:"deleted,omitempty"`
	Reactions map[string]string `json:"reactions,omitempty"` // user -> emoji
	Expires   int64             `json:"expires_ms,omitempty"`
	Read      bool              `json:"read,omitempty"`
	Delivered bool              `json:"delivered,omitempty"`
	Typing    *bool             `json:"typing,omitempty"`
}

func messagingJSON(m *client.Message) *jsonMessaging {
	j := &jsonMessaging{Kind: m.Kind, Edited: m.Edited(), Deleted: m.Deleted, Read: m.Read, Delivered: m.Delivered}
	if m.Kind == client.KindTimer {
		secs := m.TimerSeconds
		j.Timer = &secs
	}
	if m.QuoteID != nil {
		j.QuoteID = hex.EncodeToString(m.QuoteID)
	}
	if m.Edited() {
		for _, v := range m.Versions {
			j.Versions = append(j.Versions, safetext.Body(v.Text))
		}
	}
	if len(m.Reactions) > 0 {
		j.Reactions = map[string]string{}
		for _, r := range m.Reactions {
			j.Reactions[safetext.Name(r.From)] = safetext.Line(r.Emoji)
		}
	}
	if !m.ExpiresAt.IsZero() {
		j.Expires = m.ExpiresAt.UnixMilli()
	}
	return j
}

// messagingText is the text line mode shows for m: the text with marks for
// edits and reactions, or what replaced it; sanitized (safe.go).
func messagingText(m *client.Message) string {
	switch {
	case m.Kind == client.KindTimer:
		who := safetext.Name(m.From)
		if m.Outgoing {
			who = "you"
		}
		return fmt.Sprintf("(%s set disappearing messages: %s)", who, timerText(m.TimerSeconds))
	case m.Deleted:
		return "(this message was deleted)"
	}
	t := safetext.Block(m.Text, contPrefix)
	if m.QuoteID != nil {
		t = fmt.Sprintf("(reply to %s) %s", hex.EncodeToString(m.QuoteID)[:8], t)
	}
	if m.Edited() {
		t += " (edited)"
	}
	if m.ExpireSeconds > 0 {
		t += " (disappears)"
	}
	if len(m.Reactions) > 0 {
		var rs []string
		for _, r := range m.Reactions {
			rs = append(rs, safetext.Name(r.From)+" "+safetext.Line(r.Emoji))
		}
		t += " [" + strings.Join(rs, ", ") + "]"
	}
	return t
}

// printMessagingEvent prints update, typing and expiry events.
func printMessagingEvent(e *env, ev client.Event, asJSON bool) {
	switch ev.Kind {
	case client.EventUpdate:
		if asJSON {
			printJSONEvent(e, "update", ev.Message)
			return
		}
		fmt.Fprint(e.stdout, "* ")
		printMessage(e, ev.Message, false)
	case client.EventExpired:
		if asJSON {
			printJSONEvent(e, "expired", ev.Message)
			return
		}
		fmt.Fprintf(e.stdout, "* a disappearing message with %s expired\n", safetext.Name(ev.Message.Peer))
	case client.EventTyping:
		if asJSON {
			b, _ := json.Marshal(struct {
				Event  string `json:"event"`
				From   string `json:"from"`
				Typing bool   `json:"typing"`
			}{"typing", safetext.Name(ev.User), ev.Typing})
			fmt.Fprintf(e.stdout, "%s\n", b)
			return
		}
		if ev.Typing {
			fmt.Fprintf(e.stderr, "(%s is typing)\n", safetext.Name(ev.User))
		}
	}
}

func printJSONEvent(e *env, event string, m *client.Message) {
	j := jsonMessage{From: safetext.Name(m.From), Device: m.FromDevice, ID: hex.EncodeToString(m.ID), TS: m.SentAt.UnixMilli(), Text: safetext.Body(m.Text)}
	if m.Outgoing || (m.From != m.Peer && m.Peer != "") {
		j.To = safetext.Name(m.Peer)
	}
	j.jsonMessaging = messagingJSON(m)
	j.Event = event
	b, _ := json.Marshal(j)
	fmt.Fprintf(e.stdout, "%s\n", b)
}
