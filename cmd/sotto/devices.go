package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/store"
	"sotto/internal/safetext"
)

func cmdDevices(e *env, args []string) error {
	sub := "list"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "list":
		return devicesList(e, args)
	case "link":
		return devicesLink(e, args)
	case "approve":
		return devicesApprove(e, args)
	case "import-history":
		return devicesImportHistory(e, args)
	case "remove":
		return devicesRemove(e, args)
	case "wipe":
		return devicesWipe(e, args)
	}
	return errUsage
}

func devicesList(e *env, args []string) error {
	fs := e.flagSet("devices list")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	ds, err := s.api.Devices(e.ctx)
	if err != nil {
		return agentError(e, err)
	}
	for _, d := range ds {
		mark := ""
		if d.Current {
			mark = "\t(this device)"
		}
		fmt.Fprintf(e.stdout, "%d\t%s\tcreated %s%s\n", d.ID, deviceLabel(d.ID, d.Name), d.Created.UTC().Format(time.DateOnly), mark)
	}
	return nil
}

func devicesLink(e *env, args []string) error {
	fs := e.flagSet("devices link")
	relay := fs.String("relay", "", "relay `URL`")
	name := fs.String("device-name", "", deviceNameUsage)
	codeFile := fs.String("code-file", "", "also write the link code to `FILE`")
	timeout := fs.Duration("timeout", 3*time.Minute, "how long to wait for the approval (a relay keeps a link channel open 3 minutes by default)")
	deferHistory := fs.Bool("defer-history", false, "keep a history sent by the approving device for later: sotto devices import-history")
	e.kdfFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *relay == "" {
		return errors.New("devices link: missing --relay")
	}
	if store.Exists(e.home) {
		return fmt.Errorf("devices link: %s already holds an enrolled device", e.home)
	}
	pass, err := e.passphrase(true)
	if err != nil {
		return err
	}
	defer clear(pass)
	ctx, cancel := context.WithTimeout(e.ctx, *timeout)
	defer cancel()
	l, err := client.BeginLinkWith(ctx, *relay, e.transport())
	if err != nil {
		return err
	}
	defer l.Close()
	code := l.NamedCode(*name) // the approving device shows the name
	fmt.Fprintf(e.stdout, "On a device already linked to your account, run:\n  sotto devices approve %s\n", code)
	if isTerminal(e.stdout) {
		if err := writeQR(e.stdout, code); err != nil {
			return err
		}
	}
	if *codeFile != "" {
		if err := writeFileAtomic(*codeFile, []byte(code+"\n")); err != nil {
			return err
		}
	}
	c, err := l.Finish(ctx, e.home, pass, *name, e.options(nil))
	if errors.Is(err, client.ErrProvisioningClosed) {
		return fmt.Errorf("devices link: the relay closed the link channel before an approval came (it keeps one open a few minutes): run devices link again and approve the new code")
	}
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(e.stdout, "linked to %s as device %d\n", safetext.Name(c.Username()), c.DeviceID())
	pending, err := c.HistoryPending(ctx)
	if err != nil || !pending {
		return err
	}
	if *deferHistory {
		fmt.Fprintln(e.stdout, "history received, not imported yet: run sotto devices import-history")
		return nil
	}
	if err := c.Connect(ctx, client.ConnectOptions{}); err != nil {
		return fmt.Errorf("devices link: history not imported yet (retry with: sotto devices import-history): %w", err)
	}
	return importHistory(e, c)
}

// importHistory imports the history the approving device sent (devices
// link, on the client it just linked).
func importHistory(e *env, c *client.Client) error {
	fmt.Fprintln(e.stdout, "importing the history sent by the approving device...")
	sum, err := c.ImportHistory(e.ctx)
	if err != nil {
		return historyError(err)
	}
	printImported(e, api.HistoryImportAnswer{Messages: sum.Messages, Conversations: sum.Conversations, Contacts: sum.Contacts, Expired: sum.Expired})
	return nil
}

// historyError is what the CLI says when an import failed: refused (the
// history was damaged, it is dropped), none pending, or to be retried.
func historyError(err error) error {
	switch {
	case errors.Is(err, client.ErrHistoryTampered), errors.Is(err, client.ErrBadHistory), api.IsKind(err, api.KindRefused):
		return fmt.Errorf("history refused: %w", err)
	case errors.Is(err, client.ErrNoHistory), api.IsKind(err, api.KindNotFound):
		return err
	}
	return fmt.Errorf("history not imported yet (retry with: sotto devices import-history): %w", err)
}

func printImported(e *env, sum api.HistoryImportAnswer) {
	fmt.Fprintf(e.stdout, "history imported: %d messages in %d conversations, %d contacts", sum.Messages, sum.Conversations, sum.Contacts)
	if sum.Expired > 0 {
		fmt.Fprintf(e.stdout, " (%d expired messages left out)", sum.Expired)
	}
	fmt.Fprintln(e.stdout)
}

// devicesImportHistory imports a pending history through the device's
// agent (POST /v1/devices/history/import): the running one, on its one
// connection, or one served in this process for this command.
func devicesImportHistory(e *env, args []string) error {
	fs := e.flagSet("devices import-history")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	fmt.Fprintln(e.stdout, "importing the history sent by the approving device...")
	var sum api.HistoryImportAnswer
	if err := s.api.Do(e.ctx, http.MethodPost, "/devices/history/import", nil, &sum); err != nil {
		return historyError(agentError(e, err))
	}
	printImported(e, sum)
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func devicesApprove(e *env, args []string) error {
	fs := e.flagSet("devices approve")
	codeFile := fs.String("code-file", "", "read the link code from `FILE`")
	noHistory := fs.Bool("no-history", false, "do not send this device's message history, contacts and settings")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	var code string
	switch {
	case len(pos) == 1 && *codeFile == "":
		code = pos[0]
	case len(pos) == 0 && *codeFile != "":
		b, err := os.ReadFile(*codeFile)
		if err != nil {
			return err
		}
		code = strings.TrimSpace(string(b))
	default:
		return errUsage
	}
	if s, err := e.join(); err != nil {
		return err
	} else if s != nil {
		// The running agent holds the device's one connection: it approves.
		defer s.close()
		return approveViaAgent(e, s, code, !*noHistory)
	}
	c, err := e.connect(false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	history := !*noHistory
	if history && isTerminalIn(e.stdin) && isTerminal(e.stdout) {
		fmt.Fprint(e.stdout, "Also send this device's message history, contacts and settings to the new device\n(end-to-end encrypted; your private keys stay here)? [Y/n] ")
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		history = !strings.HasPrefix(strings.ToLower(strings.TrimSpace(answer)), "n")
	}
	sum, err := c.ApproveLinkWith(e.ctx, code, client.ApproveOptions{History: history})
	if err != nil {
		return err
	}
	if sum != nil {
		fmt.Fprintf(e.stdout, "history sent: %d messages in %d conversations, %d contacts, %d bytes encrypted (--no-history to link without it)\n",
			sum.Messages, sum.Conversations, sum.Contacts, sum.Bytes)
		if sum.Omitted > 0 {
			fmt.Fprintf(e.stdout, "the %d oldest messages were left out: the history exceeds %d MiB\n", sum.Omitted, client.MaxHistorySize>>20)
		}
	} else {
		fmt.Fprintln(e.stdout, "no history sent: the new device starts empty")
	}
	fmt.Fprintln(e.stdout, "approved: the new device is finishing its registration")
	return nil
}

func devicesRemove(e *env, args []string) error {
	fs := e.flagSet("devices remove")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	id, err := strconv.ParseUint(pos[0], 10, 32)
	if err != nil {
		return fmt.Errorf("devices remove: bad device id %q", pos[0])
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.api.RemoveDevice(e.ctx, uint32(id)); err != nil {
		return agentError(e, err)
	}
	fmt.Fprintf(e.stdout, "device %d removed\n", id)
	return nil
}

func devicesWipe(e *env, args []string) error {
	fs := e.flagSet("devices wipe")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	id, err := strconv.ParseUint(pos[0], 10, 32)
	if err != nil {
		return fmt.Errorf("devices wipe: bad device id %q", pos[0])
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.api.WipeDevice(e.ctx, uint32(id)); err != nil {
		return agentError(e, err)
	}
	fmt.Fprintf(e.stdout, "wipe order sent: device %d wipes itself when it next connects; then revoke it with: sotto devices remove %d\n", id, id)
	return nil
}

// approveViaAgent is devices approve through the running agent
// (POST /v1/devices/link/check, then /link/approve).
func approveViaAgent(e *env, s *session, code string, history bool) error {
	var chk api.LinkCheckAnswer
	if err := s.api.Do(e.ctx, http.MethodPost, "/devices/link/check", api.LinkRequest{Code: code}, &chk); err != nil {
		return agentError(e, err)
	}
	if chk.Name != "" {
		fmt.Fprintf(e.stdout, "the device asking to join is named %q\n", safetext.Name(chk.Name))
	}
	if history && isTerminalIn(e.stdin) && isTerminal(e.stdout) {
		fmt.Fprint(e.stdout, "Also send this device's message history, contacts and settings to the new device\n(end-to-end encrypted; your private keys stay here)? [Y/n] ")
		answer, _ := bufio.NewReader(e.stdin).ReadString('\n')
		history = !strings.HasPrefix(strings.ToLower(strings.TrimSpace(answer)), "n")
	}
	var a api.LinkApproveAnswer
	if err := s.api.Do(e.ctx, http.MethodPost, "/devices/link/approve", api.LinkRequest{Code: code, History: history}, &a); err != nil {
		return agentError(e, err)
	}
	if h := a.History; h != nil {
		fmt.Fprintf(e.stdout, "history sent: %d messages in %d conversations, %d contacts (--no-history to link without it)\n",
			h.Messages, h.Conversations, h.Contacts)
		if h.Omitted > 0 {
			fmt.Fprintf(e.stdout, "the %d oldest messages were left out: the history exceeds %d MiB\n", h.Omitted, client.MaxHistorySize>>20)
		}
	} else {
		fmt.Fprintln(e.stdout, "no history sent: the new device starts empty")
	}
	fmt.Fprintln(e.stdout, "approved: the new device is finishing its registration")
	return nil
}
