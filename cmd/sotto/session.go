package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"sotto/agent"
	"sotto/agent/api"
	"sotto/client/store"
)

// A command that uses the device talks to its agent through the local API
// (docs/agent-api.md), whoever hosts the agent:
//   - the agent running for the home (sotto up, or a listen or chat
//     hosting it): the command joins it over HOME/agent.sock, with no
//     unlock and no connection of its own;
//   - none running: listen and chat host the agent in their own process
//     for as long as they run, serving the socket meanwhile so that other
//     commands share it; a one-shot command opens the device for itself
//     only (an agent served in memory, connected without receiving, so
//     that what is queued for the device stays for the receiving agent).

// session is a command's way to its device's agent.
type session struct {
	api *api.Client
	// host is the agent when this process hosts it (nil when joined).
	host *agent.Agent
	// end stops what the session started (waits for it).
	end func()
	// ran is closed when a hosted agent's Run returned, with runErr.
	ran    chan struct{}
	runErr error
}

// finish ends a session whose command is done: a hosted agent first sends
// the receipts it owes (Agent.Shutdown), then stops.
func (s *session) finish() {
	if s.host != nil {
		s.host.Shutdown()
		<-s.ran
	}
	s.end()
}

// close ends the session at once (an interrupted or failed command): a
// hosted agent stops without waiting for the receipts it owes.
func (s *session) close() { s.end() }

// join returns a session with the agent running for the home (unlocking it
// first when it is locked), or nil when none runs.
func (e *env) join() (*session, error) {
	if _, ok := agent.Running(e.home); !ok {
		return nil, nil
	}
	cl := api.Dial(e.home)
	st, err := cl.Status(e.ctx)
	if err != nil {
		return nil, fmt.Errorf("the agent for %s does not answer (%w): stop it with sotto down, or end its process", e.home, err)
	}
	if st.Locked {
		if err := e.unlockAgent(cl); err != nil {
			return nil, err
		}
	}
	return &session{api: cl, end: cl.CloseIdle}, nil
}

// unlockAgent unlocks a locked agent with the passphrase (--passphrase-file
// or the terminal).
func (e *env) unlockAgent(cl *api.Client) error {
	fmt.Fprintln(e.stderr, "! the device is locked")
	pass, err := e.passphrase(false)
	if err != nil {
		return err
	}
	defer clear(pass)
	return agentError(e, cl.Unlock(e.ctx, pass))
}

// agentError turns the agent's answers into what the CLI says.
func agentError(e *env, err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Kind {
	case api.KindWrongPassphrase:
		if ae.AttemptsLeft > 0 {
			return fmt.Errorf("wrong passphrase (%d attempts left before this device wipes itself)", ae.AttemptsLeft)
		}
		return errors.New("wrong passphrase")
	case api.KindWiped:
		if errors.Is(err, store.ErrWipedAfterFailures) || ae.Message == store.ErrWipedAfterFailures.Error() {
			return errors.New("too many wrong passphrases: this device's keys and history were wiped")
		}
	case api.KindNoDevice:
		return e.noDevice()
	}
	return err
}

// agentConfig is the configuration of an agent this process hosts.
func (e *env) agentConfig() agent.Config {
	return agent.Config{Home: e.home, Options: *e.options(nil), ReceiptWait: e.receiptDelay + 30*time.Second}
}

// openAgent unlocks the store for an agent hosted by this process.
func (e *env) openAgent(cfg agent.Config) (*agent.Agent, error) {
	if !store.Exists(e.home) {
		return nil, e.noDevice()
	}
	pass, err := e.passphrase(false)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	a, err := agent.Open(e.ctx, pass, cfg)
	if err != nil {
		return nil, e.unlockError(err)
	}
	if weak := a.Client().PassphraseBelowPolicy(e.ctx, pass); weak != nil {
		fmt.Fprintf(e.stderr, "! %v: your organization asks for a stronger passphrase; change it with sotto lock --new-passphrase-file FILE\n", weak)
	}
	return a, nil
}

// session returns a session for a one-shot command: with the running
// agent, else with an agent for this command only, connected (without
// receiving) when online is set.
func (e *env) session(online bool) (*session, error) {
	if s, err := e.join(); s != nil || err != nil {
		return s, err
	}
	a, err := e.openAgent(e.agentConfig())
	if err != nil {
		return nil, err
	}
	if online {
		if err := a.Connect(e.ctx); err != nil {
			a.Close()
			return nil, err
		}
		if w, err := a.Client().SubscriptionWarning(e.ctx); err == nil && w != "" {
			fmt.Fprintf(e.stderr, "! %s\n", w)
		}
	}
	cl, stop := agent.Local(a)
	return &session{api: cl, host: a, end: func() {
		stop()
		a.Close()
	}}, nil
}

// sessionMaybeOnline is session for a command that checks with the relay
// when it can: without an agent running, it connects if the relay is
// reachable and says so when it is not.
func (e *env) sessionMaybeOnline() (*session, error) {
	s, err := e.session(false)
	if err != nil || s.host == nil {
		return s, err
	}
	if err := s.host.Connect(e.ctx); err != nil {
		fmt.Fprintf(e.stderr, "! relay not reachable (%s): using the stored key\n", errText(err))
	}
	return s, nil
}

// hostOrJoin returns a session for a long-running command (listen, chat):
// with the running agent, else with one this process hosts, serving the
// home's socket, until the session ends. cfg tunes a hosted agent.
func (e *env) hostOrJoin(cfg agent.Config) (*session, error) {
	if s, err := e.join(); s != nil || err != nil {
		return s, err
	}
	if !store.Exists(e.home) {
		return nil, e.noDevice()
	}
	ln, err := agent.Listen(e.home)
	var re *agent.RunningError
	if errors.As(err, &re) {
		// Another command started one meanwhile.
		if s, err := e.join(); s != nil || err != nil {
			return s, err
		}
	}
	if err != nil {
		return nil, err
	}
	pipe := agent.NewPipeListener()
	cfg.Listeners = []net.Listener{ln, pipe}
	a, err := e.openAgent(cfg)
	if err != nil {
		ln.Close()
		pipe.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(e.ctx)
	cl := api.NewClient(pipe.Dial)
	s := &session{api: cl, host: a, ran: make(chan struct{})}
	go func() {
		// Owned by the session: its end cancels and waits.
		defer close(s.ran)
		s.runErr = a.Run(ctx)
	}()
	s.end = func() {
		cancel()
		<-s.ran
		cl.CloseIdle()
		a.Close()
	}
	return s, nil
}
