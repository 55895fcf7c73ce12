package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sotto/agent"
	"sotto/agent/api"
	"sotto/client/call"
	"sotto/client/store"
	"sotto/internal/safetext"
	"sotto/web"
)

// agentLogName is the log of an agent started by sotto up, in its home.
const agentLogName = "agent.log"

// cmdAgent runs the device's agent in the foreground until interrupted or
// stopped (sotto down): sotto up runs it in the background.
func cmdAgent(e *env, args []string) error {
	fs := e.flagSet("agent")
	passStdin := fs.Bool("passphrase-stdin", false, "read the passphrase from the first line of standard input (how sotto up hands it over)")
	readyFD := fs.Int("ready-fd", 0, "write \"ok\", or the error, to file descriptor `N` once serving (sotto up)")
	noAck := fs.Bool("no-ack", false, "do not acknowledge (messages will be redelivered): for testing")
	idleLock := fs.Duration("idle-lock", 0, idleLockUsage)
	webAddr := fs.String("web", "", "also serve the web app on `ADDR` (127.0.0.1:0: a random port) and print its one-time link")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	ready := func(err error) {
		if *readyFD <= 0 {
			return
		}
		f := os.NewFile(uintptr(*readyFD), "ready")
		defer f.Close()
		var nd *noDeviceError
		switch {
		case err == nil:
			fmt.Fprintln(f, "ok")
		case errors.As(err, &nd):
			// sotto up says it as on a device where nothing was ever
			// enrolled (also what the duress passphrase comes to).
			fmt.Fprintln(f, readyNoDevice)
		default:
			fmt.Fprintln(f, errText(err))
		}
		*readyFD = 0
	}
	err := runAgent(e, *passStdin, *noAck, *idleLock, *webAddr, ready)
	ready(err)
	if !store.Exists(e.home) {
		// Wiped (an order, the duress passphrase, too many failures):
		// nothing of the agent stays behind either.
		_ = os.Remove(filepath.Join(e.home, agentLogName))
		_ = os.Remove(filepath.Join(e.home, agent.LockName))
	}
	return err
}

// readyNoDevice is what sotto agent answers sotto up for a home where no
// device is enrolled.
const readyNoDevice = "nodevice"

// idleLockUsage is the help of the --idle-lock flags.
const idleLockUsage = "lock after `D` without use (the stricter of this and the organization's policy applies; 0: the policy's)"

func runAgent(e *env, passStdin, noAck bool, idleLock time.Duration, webAddr string, ready func(error)) error {
	if !store.Exists(e.home) {
		return e.noDevice()
	}
	ln, err := agent.Listen(e.home)
	if err != nil {
		return err
	}
	cfg := e.agentConfig()
	cfg.Listeners = append(cfg.Listeners, ln)
	cfg.NoAck = noAck
	cfg.IdleLock = idleLock
	// The background agent carries the device's calls: incoming ones
	// ring there, and its clients answer them (listen --auto-answer).
	cfg.Calls = &call.Options{Logger: e.logger()}
	var webSrv *web.Server
	if webAddr != "" {
		// Bound before the unlock, so that a bad address fails first; the
		// agent serves it (Mounts) with its API behind the web app's guard.
		if webSrv, err = newWebServer(e, webAddr, nil); err != nil {
			ln.Close()
			return err
		}
		cfg.Mounts = append(cfg.Mounts, agent.Mount{Listener: webSrv.Listener(), Wrap: webSrv.Wrap})
	}
	var pass []byte
	if passStdin {
		line, rerr := bufio.NewReader(e.stdin).ReadString('\n')
		pass = []byte(strings.TrimRight(line, "\r\n"))
		if rerr != nil && len(pass) == 0 {
			ln.Close()
			closeWeb(webSrv)
			return errors.New("agent: no passphrase on standard input")
		}
	} else if pass, err = e.passphrase(false); err != nil {
		ln.Close()
		closeWeb(webSrv)
		return err
	}
	a, err := agent.Open(e.ctx, pass, cfg)
	clear(pass)
	if err != nil {
		ln.Close()
		closeWeb(webSrv)
		return e.unlockError(err)
	}
	defer a.Close()
	if webSrv != nil {
		printLoginURL(e, webSrv)
	}
	fmt.Fprintf(e.stderr, "sotto: agent for %s running (pid %d)\n", e.home, os.Getpid())
	ready(nil)
	err = a.Run(e.ctx)
	if errors.Is(err, agent.ErrStopped) {
		err = nil
	}
	fmt.Fprintln(e.stderr, "sotto: agent stopped")
	return err
}

// globalArgs are the global flags a child sotto gets (sotto up).
func (e *env) globalArgs() []string {
	args := []string{"--home", e.home, "--receipt-delay", e.receiptDelay.String()}
	if e.caFile != "" {
		args = append(args, "--ca", e.caFile)
	}
	if e.pinText != "" {
		args = append(args, "--pin", e.pinText)
	}
	if e.insecure {
		args = append(args, "--insecure")
	}
	if e.verbose {
		args = append(args, "-v")
	}
	return args
}

// cmdUp starts the device's agent in the background, unlocked with the
// passphrase asked here, and returns once it serves.
func cmdUp(e *env, args []string) error {
	fs := e.flagSet("up")
	idleLock := fs.Duration("idle-lock", 0, idleLockUsage)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if pid, ok := agent.Running(e.home); ok {
		fmt.Fprintf(e.stdout, "the agent for %s already runs (pid %d)\n", e.home, pid)
		return nil
	}
	home, err := filepath.Abs(e.home)
	if err != nil {
		return err
	}
	e.home = home // as the agent will say it, whatever happens
	if !store.Exists(e.home) {
		return e.noDevice()
	}
	pass, err := e.passphrase(false)
	if err != nil {
		return err
	}
	defer clear(pass)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// The passphrase goes through a pipe: never on a command line or in
	// the environment, where other processes could read it.
	passR, passW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer passR.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		passW.Close()
		return err
	}
	defer readyR.Close()
	logf, err := os.OpenFile(filepath.Join(home, agentLogName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		passW.Close()
		readyW.Close()
		return err
	}
	defer logf.Close()
	cmd := exec.Command(self, append(e.globalArgs(), "agent", "--passphrase-stdin", "--ready-fd", "3", "--idle-lock", idleLock.String())...)
	cmd.Args[0] = os.Args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = passR, logf, logf
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not stopped with this terminal
	cmd.Dir = home
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		passW.Close()
		return fmt.Errorf("start the agent: %w", err)
	}
	_, werr := passW.Write(append(append([]byte(nil), pass...), '\n'))
	passW.Close()
	if werr != nil {
		return fmt.Errorf("start the agent: %w", werr)
	}
	answer, _ := io.ReadAll(io.LimitReader(readyR, 4096))
	pid := cmd.Process.Pid
	_ = cmd.Process.Release()
	got := strings.TrimSpace(string(answer))
	if got == readyNoDevice {
		return e.noDevice()
	}
	if got != "ok" {
		if got == "" {
			got = "it exited (see " + filepath.Join(home, agentLogName) + ")"
		}
		return fmt.Errorf("the agent did not start: %s", got)
	}
	fmt.Fprintf(e.stdout, "agent started for %s (pid %d)\n", home, pid)
	return nil
}

// cmdDown stops the device's agent and waits until it has.
func cmdDown(e *env, args []string) error {
	fs := e.flagSet("down")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	pid, ok := agent.Running(e.home)
	if !ok {
		fmt.Fprintf(e.stdout, "no agent runs for %s\n", e.home)
		return nil
	}
	cl := api.Dial(e.home)
	defer cl.CloseIdle()
	if err := cl.Shutdown(e.ctx); err != nil {
		return fmt.Errorf("stop the agent (pid %d): %w", pid, err)
	}
	// It sends the receipts it owes first.
	deadline := time.Now().Add(e.receiptDelay + 40*time.Second)
	for time.Now().Before(deadline) {
		if _, ok := agent.Running(e.home); !ok {
			fmt.Fprintf(e.stdout, "agent stopped (pid %d)\n", pid)
			return nil
		}
		select {
		case <-e.ctx.Done():
			return e.ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the agent (pid %d) did not stop", pid)
}

// cmdStatus shows the device's agent.
func cmdStatus(e *env, args []string) error {
	fs := e.flagSet("status")
	asJSON := fs.Bool("json", false, "print the agent's status as JSON (docs/agent-api.md)")
	waitIdle := fs.Bool("wait-idle", false, "first wait until the agent is connected and has processed what was queued for the device (for scripts)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if _, ok := agent.Running(e.home); !ok {
		return fmt.Errorf("no agent runs for %s (start it with sotto up)", e.home)
	}
	cl := api.Dial(e.home)
	defer cl.CloseIdle()
	if *waitIdle {
		if err := waitAgentIdle(e, cl); err != nil {
			return err
		}
	}
	st, err := cl.Status(e.ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintf(e.stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(e.stdout, "agent for %s: pid %d, running since %s, unlocked %d time(s), connected %d time(s)\n",
		safetext.Line(st.Home), st.PID, st.Started.Local().Format(time.DateTime), st.Unlocks, st.Connects)
	fmt.Fprintf(e.stdout, "%s, device %d, relay %s\n", safetext.Name(st.User), st.Device, safetext.Line(st.Relay))
	state := "not connected (reconnecting)"
	switch {
	case st.Locked:
		state = "locked (sotto unlock)"
	case st.Connected && st.Idle:
		state = "connected, up to date"
	case st.Connected:
		state = "connected, receiving what was queued"
	}
	fmt.Fprintln(e.stdout, state)
	if st.Warning != "" {
		fmt.Fprintf(e.stdout, "! %s\n", safetext.Line(st.Warning))
	}
	return nil
}

// waitAgentIdle waits until the agent is connected and idle (its event
// stream says so, or its status already does).
func waitAgentIdle(e *env, cl *api.Client) error {
	stream, err := cl.Events(e.ctx, false, 0)
	if err != nil {
		return err
	}
	defer stream.Close()
	st, err := cl.Status(e.ctx)
	if err != nil {
		return err
	}
	if st.Connected && st.Idle {
		return nil
	}
	feed, stop := eventFeed(e.ctx, stream)
	defer stop()
	for ev := range feed {
		if ev.Type == api.EventIdle {
			return nil
		}
	}
	if e.ctx.Err() != nil {
		return e.ctx.Err()
	}
	return errors.New("the agent stopped")
}

// cmdUnlock unlocks the agent after an idle lock.
func cmdUnlock(e *env, args []string) error {
	fs := e.flagSet("unlock")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if _, ok := agent.Running(e.home); !ok {
		return fmt.Errorf("no agent runs for %s (start it with sotto up)", e.home)
	}
	cl := api.Dial(e.home)
	defer cl.CloseIdle()
	st, err := cl.Status(e.ctx)
	if err != nil {
		return err
	}
	if !st.Locked {
		fmt.Fprintln(e.stdout, "the agent is not locked")
		return nil
	}
	if err := e.unlockAgent(cl); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "unlocked")
	return nil
}
