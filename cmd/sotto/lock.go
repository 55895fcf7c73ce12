package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"sotto/agent"
	"sotto/client"
	"sotto/client/store"
)

func cmdWipe(e *env, args []string) error {
	fs := e.flagSet("wipe")
	yes := fs.Bool("yes", false, "really destroy this device's keys and history")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if !*yes {
		return errors.New("wipe destroys this device's keys and history for good: run again with --yes")
	}
	if !store.Exists(e.home) {
		return fmt.Errorf("no store in %s", e.home)
	}
	if _, ok := agent.Running(e.home); ok {
		// The agent holds the store open and its keys in memory: it stops
		// first, as with sotto down, then the store is wiped.
		if err := cmdDown(e, nil); err != nil {
			return err
		}
	}
	if err := store.Wipe(e.home); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "wiped")
	return nil
}

func cmdLock(e *env, args []string) error {
	fs := e.flagSet("lock")
	wipeAfter := fs.Int("wipe-after", -1, "wipe this device after `N` consecutive wrong passphrases (0: never)")
	duressFile := fs.String("duress-file", "", "set the duress passphrase from `FILE`: unlocking with it silently wipes this device")
	noDuress := fs.Bool("no-duress", false, "remove the duress passphrase")
	newPassFile := fs.String("new-passphrase-file", "", "change the passphrase to the one in `FILE` (it must be strong enough)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *duressFile != "" && *noDuress {
		return errUsage
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if *newPassFile != "" {
		if err := changePassphrase(e, c, *newPassFile); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, "passphrase changed")
	}
	if *wipeAfter >= 0 {
		if err := c.SetWipeAfter(*wipeAfter); err != nil {
			return err
		}
	}
	switch {
	case *noDuress:
		if err := c.SetDuress(nil); err != nil {
			return err
		}
	case *duressFile != "":
		b, err := os.ReadFile(*duressFile)
		if err != nil {
			return fmt.Errorf("duress file: %w", err)
		}
		b = []byte(strings.TrimRight(string(b), "\r\n"))
		defer clear(b)
		if len(b) == 0 {
			return errors.New("duress file is empty")
		}
		if err := c.SetDuress(b); err != nil {
			return err
		}
	}
	p, err := c.Policy()
	if err != nil {
		return err
	}
	if p.WipeAfter > 0 {
		fmt.Fprintf(e.stdout, "wipe after %d wrong passphrases\n", p.WipeAfter)
	} else {
		fmt.Fprintln(e.stdout, "no limit on wrong passphrases")
	}
	if p.Duress {
		fmt.Fprintln(e.stdout, "duress passphrase set")
	} else {
		fmt.Fprintln(e.stdout, "no duress passphrase")
	}
	return nil
}

// changePassphrase changes the store's passphrase to the one in file.
func changePassphrase(e *env, c *client.Client, file string) error {
	old, err := e.passphrase(false)
	if err != nil {
		return err
	}
	defer clear(old)
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("new passphrase file: %w", err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	defer clear(b)
	return c.ChangePassphrase(old, b)
}
