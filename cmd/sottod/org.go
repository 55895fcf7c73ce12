package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"sotto/relay"
	"sotto/wire"
)

// `sottod admin org ...` and subscription management. The relay keeps only
// the organization's public key; the private key stays on admins' clients
// (`sotto admin init`).

const orgAdminUsage = `  sottod admin org show [-data dir] [--json]
  sottod admin accounts extend [-data dir] [-days n] [--json] USERNAME
  sottod admin accounts suspend [-data dir] [--json] USERNAME
`

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

// bootstrap prints the one-time code with which the first admin device
// creates the organization. It carries the relay's URL, its key log key
// and (with -tls-cert) its certificate's public key pin: the operator
// hands it to the first admin out of band, and nothing of it comes from
// the relay over the network.
func (a *adminCmd) bootstrap(ctx context.Context, relayURL, tlsCert string, days int) error {
	if !strings.HasPrefix(relayURL, "ws://") && !strings.HasPrefix(relayURL, "wss://") {
		return errors.New("-relay must be a ws:// or wss:// URL")
	}
	logKey, err := loadLogKey(*a.data)
	if err != nil {
		return err
	}
	code := &wire.BootstrapCode{RelayUrl: relayURL, LogKey: logKey.Public().(ed25519.PublicKey)}
	if tlsCert != "" {
		if code.TlsPin, err = certPin(tlsCert); err != nil {
			return err
		}
	}
	now := time.Now()
	if code.Secret, err = relay.CreateBootstrap(ctx, a.store, now, time.Duration(days)*24*time.Hour); err != nil {
		return err
	}
	text, err := relay.EncodeBootstrap(code)
	if err != nil {
		return err
	}
	exp := now.Add(time.Duration(days) * 24 * time.Hour)
	return a.emit(map[string]any{"code": text, "expires": exp, "log_key": hex.EncodeToString(code.LogKey)}, func(w io.Writer) {
		fmt.Fprintf(w, "bootstrap code (one use, only until the organization exists):\n\n%s\n\n", text)
		fmt.Fprintf(w, "On the first admin's device:\n  sotto admin init --bootstrap CODE --user NAME --org \"ORGANIZATION\"\n")
		fmt.Fprintf(w, "That creates the organization's key on that device; its admins then invite people\n(sotto admin invite USER). The relay keeps only the code's hash.\n")
	})
}

// certPin is the SHA-256 of the first certificate's SubjectPublicKeyInfo
// in a PEM file.
func certPin(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	h := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return h[:], nil
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
