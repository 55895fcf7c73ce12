package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"sotto/client"
	"sotto/client/org"
	"sotto/client/store"
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
	c, err := e.connect(false, func(ev client.Event) {
		if ev.Kind == client.EventSealedDowngrade {
			printEvent(e, ev, false)
		}
	})
	if err != nil {
		return err
	}
	defer c.Close()
	if *file != "" {
		return sendFile(e, c, pos[0], *file, strings.Join(pos[1:], " "), *viewOnce)
	}
	_, err = c.Send(e.ctx, pos[0], strings.Join(pos[1:], " "))
	return err
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
	ts := m.SentAt.Local().Format("15:04:05")
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

func cmdListen(e *env, args []string) error {
	fs := e.flagSet("listen")
	asJSON := fs.Bool("json", false, "print messages as JSON lines")
	drain := fs.Bool("drain", false, "exit once the queued messages are processed")
	count := fs.Int("count", 0, "exit after `N` messages")
	timeout := fs.Duration("timeout", 0, "exit after this long")
	noAck := fs.Bool("no-ack", false, "do not acknowledge (messages will be redelivered): for testing")
	readyFile := fs.String("ready-file", "", "create `FILE` once connected (for scripts)")
	cf := addCallFlags(fs, true)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	calls, err := newListenCalls(e, cf)
	if err != nil {
		return err
	}
	ctx := e.ctx
	if *timeout > 0 {
		var cancel func()
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	events := make(chan client.Event, 64)
	c, err := e.open(func(ev client.Event) {
		calls.handle(ev)
		select {
		case events <- ev:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return err
	}
	defer closeAfterReceipts(e, c)
	if err := c.Connect(ctx, client.ConnectOptions{Receive: true, NoAck: *noAck}); err != nil {
		return err
	}
	defer calls.start(c)()
	if *readyFile != "" {
		if err := writeFileAtomic(*readyFile, nil); err != nil {
			return err
		}
	}
	idle := c.Idle()
	if !*drain {
		idle = nil
	}
	done := c.Done()
	n := 0
	// handle shows ev; it reports whether listen ends with it.
	handle := func(ev client.Event) (bool, error) {
		printEvent(e, ev, *asJSON)
		if ev.Kind == client.EventWiped {
			return true, errWiped
		}
		if ev.Kind == client.EventMessage {
			n++
			if *count > 0 && n >= *count {
				return true, nil
			}
		}
		return false, nil
	}
	for {
		select {
		case ev := <-events:
			if stop, err := handle(ev); stop {
				return err
			}
		case <-calls.finished():
			return nil
		case <-idle:
			// Events emitted before idle are already in the channel.
			for {
				select {
				case ev := <-events:
					printEvent(e, ev, *asJSON)
				default:
					return nil
				}
			}
		case <-done:
			if stop, err := settle(c.Disconnect, events, handle); stop {
				return err
			}
			if *drain {
				return errors.New("connection to the relay lost")
			}
			if err := reconnect(ctx, e, c, client.ConnectOptions{Receive: true, NoAck: *noAck}); err != nil {
				return err
			}
			done = c.Done()
		case <-ctx.Done():
			if e.ctx.Err() == nil && *timeout > 0 {
				if *count > 0 {
					return fmt.Errorf("timed out after %d of %d messages", n, *count)
				}
				return nil
			}
			return nil
		}
	}
}

func cmdChat(e *env, args []string) error {
	fs := e.flagSet("chat")
	line := fs.Bool("line", false, "line mode (the default when not on a terminal)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if !*line && isTerminal(e.stdout) && isTerminalIn(e.stdin) && len(pos) <= 1 {
		return runTUI(e, strings.Join(pos, ""))
	}
	if len(pos) != 1 {
		return errUsage
	}
	peer := pos[0]
	events := make(chan client.Event, 64)
	ctx := e.ctx
	c, err := e.open(func(ev client.Event) {
		select {
		case events <- ev:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return err
	}
	defer closeAfterReceipts(e, c)
	hist, err := c.History(ctx, peer, 20)
	if err != nil {
		return err
	}
	for _, m := range hist {
		printMessage(e, m, false)
	}
	if err := c.Connect(ctx, client.ConnectOptions{Receive: true}); err != nil {
		return err
	}
	// Show what was queued before taking input.
	for backlog := true; backlog; {
		select {
		case ev := <-events:
			showChatEvent(ctx, e, c, peer, ev)
			if ev.Kind == client.EventWiped {
				return errWiped
			}
		case <-c.Idle():
			backlog = false
		case <-c.Done():
			backlog = false
		case <-ctx.Done():
			return nil
		}
	}
	lines := make(chan string)
	go func() {
		// Owned by chat: ends at EOF; a blocked read ends with the process.
		defer close(lines)
		sc := bufio.NewScanner(e.stdin)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	idle := newIdleTimer(ctx, c) // idlelock.go
	defer idle.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			idle.Reset()
			if strings.TrimSpace(line) == "" {
				continue
			}
			if _, err := c.Send(ctx, peer, line); err != nil {
				fmt.Fprintf(e.stderr, "! not sent: %s\n", errText(err))
			}
		case ev := <-events:
			showChatEvent(ctx, e, c, peer, ev)
			if ev.Kind == client.EventWiped {
				return errWiped
			}
		case <-c.Done():
			if stop, err := settle(c.Disconnect, events, func(ev client.Event) (bool, error) {
				showChatEvent(ctx, e, c, peer, ev)
				if ev.Kind == client.EventWiped {
					return true, errWiped
				}
				return false, nil
			}); stop {
				return err
			}
			if err := reconnect(ctx, e, c, client.ConnectOptions{Receive: true}); err != nil {
				return err
			}
		case <-idle.C():
			if err := lockLine(ctx, e, c, peer, lines, events, idle.d); err != nil {
				return err
			}
			idle.Reset()
		case <-ctx.Done():
			return nil
		}
	}
}

// showChatEvent prints an event of a chat with peer; a message from peer is
// shown, so it is acknowledged with a read receipt.
func showChatEvent(ctx context.Context, e *env, c *client.Client, peer string, ev client.Event) {
	if ev.Kind == client.EventMessage && ev.Message.Peer != peer {
		fmt.Fprintf(e.stderr, "(new message from %s)\n", safetext.Name(ev.Message.From))
		return
	}
	if ev.Kind == client.EventWiped {
		printEvent(e, ev, false)
		return
	}
	printEvent(e, ev, false)
	if ev.Kind == client.EventMessage && !ev.Message.Outgoing {
		if err := c.MarkRead(ctx, peer, ev.Message.ID); err != nil {
			fmt.Fprintf(e.stderr, "! read receipt not sent: %s\n", errText(err))
		}
	}
}

// settle runs after the relay connection ended: it stops the receive
// loop with disconnect (Client.Disconnect) while passing the events the
// loop still emits to handle, then those left in events. A wipe order
// ends the connection (the relay revokes the device on its confirmation)
// before the receive loop emits EventWiped, and the loop is stopped only
// once it returns, so the wipe is seen here rather than lost to a
// reconnect that cannot succeed. settle reports whether handle ended the
// command, and with what error; the events after that are dropped.
func settle(disconnect func(), events <-chan client.Event, handle func(client.Event) (bool, error)) (bool, error) {
	stopped := make(chan struct{})
	go func() {
		// Owned by settle, which waits for it: ends when the loop has.
		defer close(stopped)
		disconnect()
	}()
	var stop bool
	var err error
	take := func(ev client.Event) {
		if !stop {
			stop, err = handle(ev)
		}
	}
	for {
		select {
		case ev := <-events:
			take(ev)
		case <-stopped:
			for {
				select {
				case ev := <-events:
					take(ev)
				default:
					return stop, err
				}
			}
		}
	}
}

// reconnect re-establishes a lost relay connection, backing off up to 30s
// between attempts. It gives up when ctx ends or the device was revoked.
func reconnect(ctx context.Context, e *env, c *client.Client, co client.ConnectOptions) error {
	c.Disconnect()
	fmt.Fprintln(e.stderr, "! connection to the relay lost; reconnecting")
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		err := c.Connect(ctx, co)
		if err == nil {
			fmt.Fprintln(e.stderr, "! reconnected")
			return nil
		}
		if errors.Is(err, client.ErrRevoked) {
			return err
		}
	}
}

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
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	hist, err := c.History(e.ctx, pos[0], *limit)
	if err != nil {
		return err
	}
	for _, m := range hist {
		printMessage(e, m, *asJSON)
	}
	return nil
}

func cmdContacts(e *env, args []string) error {
	fs := e.flagSet("contacts")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	cs, err := c.Contacts(e.ctx)
	if err != nil {
		return err
	}
	for _, ct := range cs {
		status := "unverified"
		switch {
		case ct.Changed:
			status = "CHANGED: sending blocked until you verify"
		case ct.Verified:
			status = "verified"
		}
		if ok, err := c.IsMember(e.ctx, ct.User); err == nil && ok {
			status += ", verified member of your organization"
		}
		fmt.Fprintf(e.stdout, "%s\t%s\n", safetext.Name(ct.User), status)
	}
	return nil
}

// safetyNumber opens the store and, when the relay is reachable, connects
// so the key the relay serves now is checked; offline, the stored key is used.
func safetyNumber(e *env, user string) (*client.Client, *client.SafetyNumber, error) {
	c, err := e.open(nil)
	if err != nil {
		return nil, nil, err
	}
	if err := c.Connect(e.ctx, client.ConnectOptions{}); err != nil {
		fmt.Fprintf(e.stderr, "! relay not reachable (%s): using the stored key\n", errText(err))
	}
	sn, err := c.SafetyNumber(e.ctx, user)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, sn, nil
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
	c, sn, err := safetyNumber(e, pos[0])
	if err != nil {
		return err
	}
	defer c.Close()
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
	c, sn, err := safetyNumber(e, pos[0])
	if err != nil {
		return err
	}
	defer c.Close()
	if *accept {
		if err := c.Verify(e.ctx, sn.User); err != nil {
			return err
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
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(e.stdout, "%s, device %d, relay %s\n", safetext.Name(c.Username()), c.DeviceID(), safetext.Line(c.Relay()))
	name, err := c.OrgName(e.ctx)
	if err != nil {
		return err
	}
	key, err := c.OrgPublicKey(e.ctx)
	if err != nil {
		return err
	}
	if key != nil {
		fmt.Fprintf(e.stdout, "organization %s, key %s\n", displayOrg(name), org.Fingerprint(key))
	}
	return nil
}

// closeAfterReceipts waits (up to the receipt delay and a send) for the
// receipts of what this run received, which leave after a random delay so
// that their timing does not link sender and recipient, then closes c.
// An interrupted run (Ctrl-C) does not wait: its pending receipts are lost.
func closeAfterReceipts(e *env, c *client.Client) {
	ctx, cancel := context.WithTimeout(e.ctx, e.receiptDelay+30*time.Second)
	defer cancel()
	_ = c.WaitReceipts(ctx)
	c.Close()
}
