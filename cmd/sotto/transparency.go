package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"sotto/agent"
	"sotto/client"
	"sotto/internal/safetext"
)

// printTransparencyEvent prints a key transparency alarm loudly (stderr,
// and as a JSON line with --json); it reports whether ev was one.
func printTransparencyEvent(e *env, ev client.Event, asJSON bool) bool {
	if ev.Kind != client.EventTransparencyAlarm {
		return false
	}
	var a *client.TransparencyAlarm
	if !errors.As(ev.Err, &a) {
		fmt.Fprintf(e.stderr, "!!! KEY TRANSPARENCY ALARM: %s\n", errText(ev.Err))
		return true
	}
	if asJSON {
		b, _ := json.Marshal(map[string]any{"alarm": safetext.Line(string(a.Kind)), "detail": safetext.Line(a.Detail), "user": safetext.Name(a.User), "ts": a.Time.UnixMilli()})
		fmt.Fprintf(e.stdout, "%s\n", b)
	}
	fmt.Fprintf(e.stderr, "!!! KEY TRANSPARENCY ALARM (%s): %s\n", safetext.Line(string(a.Kind)), safetext.Line(a.Detail))
	fmt.Fprintln(e.stderr, "!!! the relay may be trying to substitute keys; the evidence is kept on this device. Compare safety numbers out of band before trusting anyone's key.")
	return true
}

// cmdKeylog shows the key transparency state: the pinned log key (compare
// it out of band with your contacts and the operator), the newest verified
// head and the alarms kept (the first ones, the newest ones, and how many
// in between were dropped). With "audit" it first audits the log's new leaves.
func cmdKeylog(e *env, args []string) error {
	fs := e.flagSet("keylog")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 || (len(pos) == 1 && pos[0] != "audit") {
		return errUsage
	}
	var c *client.Client
	if len(pos) == 1 && agentRuns(e) {
		// The running agent holds the device's one connection: it audits.
		s, err := e.session(true)
		if err != nil {
			return err
		}
		n, err := s.api.AuditKeyLog(e.ctx)
		s.close()
		if err != nil {
			return agentError(e, err)
		}
		fmt.Fprintf(e.stdout, "audited %d new bindings\n", n)
		pos = nil
	}
	if len(pos) == 1 {
		if c, err = e.connect(false, func(ev client.Event) { printEvent(e, ev, false) }); err != nil {
			return err
		}
		defer c.Close()
		n, err := c.AuditKeyLog(e.ctx)
		fmt.Fprintf(e.stdout, "audited %d new bindings\n", n)
		if err != nil {
			return err
		}
	} else {
		if c, err = e.open(nil); err != nil {
			return err
		}
		defer c.Close()
	}
	key, err := c.LogPublicKey(e.ctx)
	if err != nil {
		return err
	}
	if key == nil {
		fmt.Fprintln(e.stdout, "log key: none pinned (the relay kept no key transparency log at enrollment): nothing is checked")
		return nil
	}
	fmt.Fprintf(e.stdout, "log key: %x\n", key)
	h, err := c.TransparencyHead(e.ctx)
	if err != nil {
		return err
	}
	if h != nil {
		fmt.Fprintf(e.stdout, "head: size %d, root %x, signed %s\n", h.Size, h.Root, time.UnixMilli(h.TimestampMS).UTC().Format(time.RFC3339))
	}
	if err := printWitnessState(e, c); err != nil {
		return err
	}
	alarms, err := c.TransparencyAlarms(e.ctx)
	if err != nil {
		return err
	}
	for _, a := range alarms {
		fmt.Fprintf(e.stdout, "ALARM %s %s: %s\n", a.Time.UTC().Format(time.RFC3339), safetext.Line(string(a.Kind)), safetext.Line(a.Detail))
	}
	dropped, err := c.TransparencyAlarmsDropped(e.ctx)
	if err != nil {
		return err
	}
	if dropped > 0 {
		fmt.Fprintf(e.stdout, "ALARMS DROPPED: %d alarms raised after the first ones above and before the newest ones were not kept (to bound storage); the first and the newest are\n", dropped)
	}
	if len(alarms) == 0 {
		fmt.Fprintln(e.stdout, "no alarms")
	}
	return nil
}

// printWitnessState shows the pinned witness key (for comparison out of
// band) and the newest witnessed size.
func printWitnessState(e *env, c *client.Client) error {
	wk, err := c.WitnessPublicKey(e.ctx)
	if err != nil {
		return err
	}
	if wk == nil {
		fmt.Fprintln(e.stdout, "no witness pinned: a split view is not detectable")
		return nil
	}
	fmt.Fprintf(e.stdout, "witness key: %x\n", wk)
	wh, err := c.WitnessedHead(e.ctx)
	if err != nil {
		return err
	}
	if wh == nil {
		fmt.Fprintln(e.stdout, "witnessed: none yet")
	} else {
		fmt.Fprintf(e.stdout, "witnessed: size %d\n", wh.Size)
	}
	return nil
}

// agentRuns reports whether the device's agent runs (sotto up).
func agentRuns(e *env) bool {
	_, ok := agent.Running(e.home)
	return ok
}
