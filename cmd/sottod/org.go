package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"sotto/relay"
)

// `sottod admin org ...` and subscription management. The relay keeps only
// the organization's public key; the private key stays on admins' clients
// (`sotto admin init`).

const orgAdminUsage = `  sottod admin org set-key [-data dir] [--json] PUBLIC-KEY-HEX | @FILE
  sottod admin org show [-data dir] [--json]
  sottod admin accounts extend [-data dir] [-days n] [--json] USERNAME
  sottod admin accounts suspend [-data dir] [--json] USERNAME
`

func (a *adminCmd) orgSetKey(ctx context.Context, keyHex string) error {
	if path, ok := strings.CutPrefix(keyHex, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		keyHex = string(b)
	}
	k, err := hex.DecodeString(strings.TrimSpace(keyHex))
	if err != nil || len(k) != ed25519.PublicKeySize {
		return errors.New("the organization key must be a 32-byte Ed25519 public key in hex (from sotto admin init)")
	}
	if old, err := a.store.OrgKey(ctx); err == nil && !ed25519.PublicKey(old).Equal(ed25519.PublicKey(k)) {
		return fmt.Errorf("an organization key (%s) is already registered: devices bound to it would refuse another", relay.OrgFingerprint(old))
	}
	if err := a.store.SetOrgKey(ctx, k); err != nil {
		return err
	}
	fp := relay.OrgFingerprint(k)
	return a.emit(map[string]string{"public_key": hex.EncodeToString(k), "fingerprint": fp}, func(w io.Writer) {
		fmt.Fprintf(w, "organization key registered\nfingerprint:\t%s\n\t(new activation codes carry it)\n", fp)
	})
}

func (a *adminCmd) orgShow(ctx context.Context) error {
	k, err := a.store.OrgKey(ctx)
	if errors.Is(err, relay.ErrNotFound) {
		return a.emit(map[string]string{}, func(w io.Writer) { fmt.Fprintln(w, "no organization key registered") })
	}
	if err != nil {
		return err
	}
	fp := relay.OrgFingerprint(k)
	return a.emit(map[string]string{"public_key": hex.EncodeToString(k), "fingerprint": fp}, func(w io.Writer) {
		fmt.Fprintf(w, "public key:\t%x\nfingerprint:\t%s\n", k, fp)
	})
}

// bindCode appends the org key fingerprint to a new activation code, so
// that the enrolling device refuses any other organization key.
func (a *adminCmd) bindCode(ctx context.Context, secret string) (string, error) {
	k, err := a.store.OrgKey(ctx)
	if errors.Is(err, relay.ErrNotFound) {
		return secret, nil
	}
	if err != nil {
		return "", err
	}
	return secret + "." + relay.OrgFingerprint(k), nil
}

func (a *adminCmd) setExpiry(ctx context.Context, username string, f func(relay.Account) time.Time, verb string) error {
	u, err := relay.NormalizeUsername(username)
	if err != nil {
		return err
	}
	acct, err := a.store.AccountByName(ctx, u)
	if err != nil {
		return fmt.Errorf("account %s: %w", username, err)
	}
	exp := f(acct)
	if err := a.store.SetAccountExpiry(ctx, acct.ID, exp); err != nil {
		return err
	}
	return a.emit(map[string]any{"username": acct.Username, "expires": exp}, func(w io.Writer) {
		fmt.Fprintf(w, "%s %s: subscription until %s UTC\n", verb, acct.Username, day(exp))
	})
}

func (a *adminCmd) accountsExtend(ctx context.Context, username string, days int) error {
	return a.setExpiry(ctx, username, func(acct relay.Account) time.Time {
		from := time.Now()
		if acct.Expires.After(from) {
			from = acct.Expires
		}
		return from.Add(time.Duration(days) * 24 * time.Hour)
	}, "extended")
}

// accountsSuspend ends the subscription now: the account's devices can
// still read their history and receive, but cannot send, until extended.
func (a *adminCmd) accountsSuspend(ctx context.Context, username string) error {
	return a.setExpiry(ctx, username, func(relay.Account) time.Time { return time.Now() }, "suspended")
}
