package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/org"
	"sotto/client/store"
	"sotto/cmd/sotto/internal/tui"
	"sotto/internal/safetext"
)

func cmdEnroll(e *env, args []string) error {
	fs := e.flagSet("enroll")
	invText := fs.String("invitation", "", "the `INVITATION` from your organization's admin (text, or @FILE)")
	name := fs.String("device-name", "", deviceNameUsage)
	e.kdfFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *invText == "" {
		return fmt.Errorf("enroll: missing --invitation (ask your organization's admin: sotto admin invite USER)")
	}
	text, err := readArg(*invText)
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	inv, err := org.ParseInvitation(text, time.Now())
	if err != nil {
		return fmt.Errorf("enroll: %w", err)
	}
	if store.Exists(e.home) {
		return fmt.Errorf("enroll: %s already holds an enrolled device", e.home)
	}
	fmt.Fprintf(e.stdout, "invitation for %s to %s (organization key %s), relay %s\n",
		inv.Username(), displayOrg(inv.OrgName), org.Fingerprint(inv.OrgKey), inv.RelayUrl)
	pass, err := e.passphrase(true)
	if err != nil {
		return err
	}
	defer clear(pass)
	c, err := client.Enroll(e.ctx, client.EnrollParams{Dir: e.home, Passphrase: pass, Invitation: inv, DeviceName: *name}, e.options(nil))
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(e.stdout, "enrolled %s, device %d, in %s\n", safetext.Name(c.Username()), c.DeviceID(), displayOrg(inv.OrgName))
	return nil
}

// readArg returns s, or the contents of the file it names as @FILE.
func readArg(s string) (string, error) {
	path, ok := strings.CutPrefix(s, "@")
	if !ok {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// displayOrg shows an organization's name (hostile text neutralized).
func displayOrg(name string) string {
	if name == "" {
		return "the organization"
	}
	return fmt.Sprintf("%q", name)
}

// deviceNameUsage is the help of every --device-name flag. The name is
// stored by the relay and shown in the account's device list; it defaults
// to none rather than the host name, which would tell the relay more than
// it needs (often the owner's name or the machine's model).
const deviceNameUsage = "this device's `NAME` in your device list, as the relay stores it (default: none; the host name is never sent)"

// deviceLabel is how a device list shows a device: its name, or "device
// N" when it has none.
func deviceLabel(id uint32, name string) string {
	if name == "" {
		return fmt.Sprintf("device %d", id)
	}
	return safetext.Name(name)
}

func cmdSend(e *env, args []string) error {
	fs := e.flagSet("send")
	file := fs.String("file", "", "send the file at `PATH` (the words after USER are its caption)")
	viewOnce := fs.Bool("view-once", false, "with --file: the recipient can open it once")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 && (*file == "" || len(pos) < 1) {
		return errUsage
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	if *file != "" {
		return sendFile(e, s, pos[0], *file, strings.Join(pos[1:], " "), *viewOnce)
	}
	a, err := s.api.Send(e.ctx, pos[0], strings.Join(pos[1:], " "), nil)
	if err != nil {
		return agentError(e, err)
	}
	noteDowngrade(e, a, pos[0])
	return nil
}

// noteDowngrade says when a message went with the sender's name visible
// to the relay.
func noteDowngrade(e *env, a *api.MessageAnswer, user string) {
	if a.SealedDowngrade {
		printEvent(e, client.Event{Kind: client.EventSealedDowngrade, User: user}, false)
	}
}

// jsonMessage is one line of `listen --json`.
type jsonMessage struct {
	From   string `json:"from"`
	Device uint32 `json:"device"`
	To     string `json:"to,omitempty"` // set for messages sent by an own other device
	ID     string `json:"id"`
	TS     int64  `json:"ts"`
	Text   string `json:"text"`
	// Warning is "identity-changed" when the sender's key changed and was
	// not accepted: the message may not come from them.
	Warning string `json:"warning,omitempty"`
	// Attachment describes a file (fetch it with sotto download ID).
	Attachment *client.Attachment `json:"attachment,omitempty"`
	// Edits, reactions, deletions, timers (messaging.go).
	*jsonMessaging
}

func printMessage(e *env, m *client.Message, asJSON bool) {
	if asJSON {
		j := jsonMessage{From: safetext.Name(m.From), Device: m.FromDevice, ID: hex.EncodeToString(m.ID), TS: m.SentAt.UnixMilli(), Text: safetext.Body(m.Text)}
		if m.Outgoing {
			j.To = safetext.Name(m.Peer)
		}
		if m.Unverified {
			j.Warning = "identity-changed"
		}
		j.Attachment = jsonAttachment(m.Attachment)
		j.jsonMessaging = messagingJSON(m)
		b, _ := json.Marshal(j)
		fmt.Fprintf(e.stdout, "%s\n", b)
		return
	}
	ts := tui.Stamp(m.SentAt, time.Now(), true)
	if m.Attachment == nil {
		shown := *m
		shown.Text = messagingText(m)
		m = &shown
	}
	if m.Attachment != nil {
		m = &client.Message{From: m.From, Peer: m.Peer, Outgoing: m.Outgoing, Read: m.Read, Delivered: m.Delivered,
			Unverified: m.Unverified, Text: attachmentText(m)}
	}
	if m.Outgoing {
		state := ""
		switch {
		case m.Read:
			state = " (read)"
		case m.Delivered:
			state = " (delivered)"
		}
		fmt.Fprintf(e.stdout, "[%s] me → %s: %s%s\n", ts, safetext.Name(m.Peer), m.Text, state)
		return
	}
	if m.Unverified {
		fmt.Fprintf(e.stdout, "[%s] %s (UNVERIFIED: their safety number changed): %s\n", ts, safetext.Name(m.From), m.Text)
		return
	}
	fmt.Fprintf(e.stdout, "[%s] %s: %s\n", ts, safetext.Name(m.From), m.Text)
}

func printEvent(e *env, ev client.Event, asJSON bool) {
	if printOrgEvent(e, ev, asJSON) || printTransparencyEvent(e, ev, asJSON) {
		return
	}
	switch ev.Kind {
	case client.EventMessage:
		printMessage(e, ev.Message, asJSON)
	case client.EventUpdate, client.EventTyping, client.EventExpired:
		printMessagingEvent(e, ev, asJSON)
	case client.EventIdentityChanged:
		u := safetext.Name(ev.User)
		fmt.Fprintf(e.stderr, "! the safety number with %s changed: nothing will be sent to them until you compare it (sotto safety-number %s) and accept it (sotto verify %s --accept)\n", u, u, u)
	case client.EventSealedDowngrade:
		fmt.Fprintf(e.stderr, "! the relay refused to deliver to %s sealed: the message went with your name visible to the relay (sealed-fallback is on; see sotto settings)\n", safetext.Name(ev.User))
	case client.EventError:
		fmt.Fprintf(e.stderr, "! %s\n", errText(ev.Err))
	case client.EventWiped:
		if ev.Device == 0 {
			fmt.Fprintln(e.stderr, "! the organization ordered this device wiped (signed order verified): its keys and history are gone")
		} else {
			fmt.Fprintf(e.stderr, "! device %d of this account ordered this device wiped: its keys and history are gone\n", ev.Device)
		}
		if ev.Err != nil {
			fmt.Fprintf(e.stderr, "! wipe incomplete: %s\n", errText(ev.Err))
		}
	}
}

// errWiped ends listen and chat after a wipe order.
var errWiped = errors.New("this device was wiped")

func cmdHistory(e *env, args []string) error {
	fs := e.flagSet("history")
	limit := fs.Int("limit", 50, "show the last `N` messages (0: all)")
	asJSON := fs.Bool("json", false, "print messages as JSON lines")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	s, err := e.session(false)
	if err != nil {
		return err
	}
	defer s.close()
	hist, err := s.api.History(e.ctx, pos[0], *limit)
	if err != nil {
		return agentError(e, err)
	}
	for _, m := range hist {
		printMessage(e, m.Client(), *asJSON)
	}
	return nil
}

func cmdContacts(e *env, args []string) error {
	fs := e.flagSet("contacts")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 && (len(pos) != 2 || (pos[0] != "revoke" && pos[0] != "restore")) {
		return errUsage
	}
	s, err := e.session(len(pos) != 0)
	if err != nil {
		return err
	}
	defer s.close()
	if len(pos) == 2 {
		return contactAccess(e, s, pos[0], pos[1])
	}
	cs, err := s.api.Contacts(e.ctx)
	if err != nil {
		return agentError(e, err)
	}
	for _, ct := range cs {
		status := "unverified"
		switch {
		case ct.Changed:
			status = "CHANGED: sending blocked until you verify"
		case ct.Verified:
			status = "verified"
		}
		if ct.Member {
			status += ", verified member of your organization"
		}
		if ct.Revoked {
			status += ", sealed access revoked"
		}
		fmt.Fprintf(e.stdout, "%s\t%s\n", safetext.Name(ct.User), status)
	}
	return nil
}

// contactAccess revokes or restores user's sealed access to this account:
// a revoked contact gets no new profile key and the organization's member
// key no longer reaches this account, so the relay refuses their sealed
// sends (docs/architecture.md, sealed sender).
func contactAccess(e *env, s *session, verb, user string) error {
	do := s.api.Revoke
	done := "revoked: %s can no longer send to you sealed (your other devices are told)\n"
	if verb == "restore" {
		do = s.api.Restore
		done = "restored: %s may send to you sealed again, once your next message gives them your key\n"
	}
	if err := do(e.ctx, user); err != nil {
		return agentError(e, err)
	}
	fmt.Fprintf(e.stdout, done, safetext.Name(user))
	return nil
}

// safetyNumber returns the safety number with user through the agent.
// A connected agent checks the key the relay serves now; offline, the
// stored key is used.
func safetyNumber(e *env, user string) (*session, *client.SafetyNumber, error) {
	s, err := e.sessionMaybeOnline()
	if err != nil {
		return nil, nil, err
	}
	sn, err := s.api.SafetyNumber(e.ctx, user)
	if err != nil {
		s.close()
		return nil, nil, agentError(e, err)
	}
	return s, sn.Client(), nil
}

func printSafetyNumber(e *env, sn *client.SafetyNumber, qrCode bool) error {
	g := strings.Fields(sn.Groups())
	for i := 0; i < len(g); i += 4 {
		fmt.Fprintln(e.stdout, strings.Join(g[i:min(i+4, len(g))], " "))
	}
	if qrCode {
		return writeQR(e.stdout, string(sn.Scannable))
	}
	return nil
}

func cmdSafetyNumber(e *env, args []string) error {
	fs := e.flagSet("safety-number")
	qrFlag := fs.Bool("qr", isTerminal(e.stdout), "also draw the QR code")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	s, sn, err := safetyNumber(e, pos[0])
	if err != nil {
		return err
	}
	defer s.close()
	return printSafetyNumber(e, sn, *qrFlag)
}

func cmdVerify(e *env, args []string) error {
	fs := e.flagSet("verify")
	accept := fs.Bool("accept", false, "mark the current safety number as verified (and accept a changed key)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	s, sn, err := safetyNumber(e, pos[0])
	if err != nil {
		return err
	}
	defer s.close()
	if *accept {
		if err := s.api.Verify(e.ctx, sn.User); err != nil {
			return agentError(e, err)
		}
		fmt.Fprintf(e.stdout, "%s verified\n", safetext.Name(sn.User))
		return nil
	}
	user := safetext.Name(sn.User)
	fmt.Fprintf(e.stdout, "Safety number with %s:\n", user)
	if err := printSafetyNumber(e, sn, isTerminal(e.stdout)); err != nil {
		return err
	}
	switch {
	case sn.Changed:
		fmt.Fprintf(e.stdout, "The safety number CHANGED. Compare it with %s in person or on a trusted channel, then run: sotto verify %s --accept\n", user, user)
	case sn.Verified:
		fmt.Fprintln(e.stdout, "Verified.")
	default:
		fmt.Fprintf(e.stdout, "Not verified. Compare it with %s, then run: sotto verify %s --accept\n", user, user)
	}
	return nil
}

func cmdWhoami(e *env, args []string) error {
	fs := e.flagSet("whoami")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	s, err := e.session(false)
	if err != nil {
		return err
	}
	defer s.close()
	st, err := s.api.Status(e.ctx)
	if err != nil {
		return agentError(e, err)
	}
	fmt.Fprintf(e.stdout, "%s, device %d, relay %s\n", safetext.Name(st.User), st.Device, safetext.Line(st.Relay))
	if st.Org != nil {
		fmt.Fprintf(e.stdout, "organization %s, key %s\n", displayOrg(st.Org.Name), st.Org.Fingerprint)
	}
	return nil
}
