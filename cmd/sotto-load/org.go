package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sotto/internal/orgtest"
	"sotto/relay"
	"sotto/relay/pgstore"
	"sotto/relay/sqlitestore"
)

// The organization sotto-load's devices belong to. The relay enrolls only
// devices its organization invited (relay/invite.go), so sotto-load acts
// as that organization's admin: it keeps an org key of its own in a file
// (-org-key), opens the relay's store as `sottod admin` does (-data, or
// -store postgres), creates the organization through the relay's own
// bootstrap enrollment when the relay has none, and registers one
// invitation per simulated device; each device then certifies its
// identity key with its invitation. None of this is measured.

// orgKeyFileName is the default -org-key, in the relay's -data directory.
const orgKeyFileName = "sotto-load-org.key"

// orgStore is what sotto-load needs of the relay's store.
type orgStore interface {
	relay.Directory
	relay.OrgKeyStore
	Close() error
}

func openStore(ctx context.Context, cfg Config) (orgStore, error) {
	if cfg.Store == "postgres" {
		return pgstore.Open(ctx, cfg.PostgresURL, pgstore.Options{Schema: cfg.PGSchema, MaxConns: 2})
	}
	return sqlitestore.Open(ctx, cfg.Data, sqlitestore.Options{Readers: 1})
}

// loadOrgKey reads the org key file (the hex Ed25519 seed), creating it
// with a new key if it does not exist.
func loadOrgKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sotto-load: org key: %w", err)
		}
		_, err = fmt.Fprintln(f, hex.EncodeToString(priv.Seed()))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("sotto-load: org key: %w", err)
		}
		return priv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sotto-load: org key: %w", err)
	}
	seed, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("sotto-load: org key %s: not a hex Ed25519 seed", path)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// orgKeyPath is -org-key, or its default in the data directory.
func orgKeyPath(cfg Config) string {
	if cfg.OrgKey != "" {
		return cfg.OrgKey
	}
	return filepath.Join(cfg.Data, orgKeyFileName)
}

// ErrForeignOrg reports a relay whose organization sotto-load holds no key of.
var ErrForeignOrg = errors.New("sotto-load: the relay's organization is not the one of sotto-load's org key")

// inviteDevices makes sure the relay's organization is sotto-load's
// (creating it if the relay has none) and registers an invitation for
// each simulated device, in order.
func inviteDevices(ctx context.Context, cfg Config, out io.Writer) ([]*orgtest.Seat, error) {
	path := orgKeyPath(cfg)
	key, err := loadOrgKey(path)
	if err != nil {
		return nil, err
	}
	o := &orgtest.Org{Name: "sotto-load", Key: key}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("sotto-load: the relay's store: %w", err)
	}
	defer st.Close()
	now := time.Now()
	expires := now.Add(24 * time.Hour)
	switch k, err := st.OrgKey(ctx); {
	case errors.Is(err, relay.ErrNotFound):
		if err := bootstrapOrg(ctx, cfg, st, o, now, expires); err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "created the relay's organization (fingerprint %s, key in %s)\n", relay.OrgFingerprint(o.Public()), path)
	case err != nil:
		return nil, fmt.Errorf("sotto-load: the relay's org key: %w", err)
	case !bytes.Equal(k, o.Public()):
		return nil, fmt.Errorf("%w: the relay's has fingerprint %s, %s holds %s; run sotto-load against a relay whose organization it created, or give -org-key that organization's key",
			ErrForeignOrg, relay.OrgFingerprint(k), path, relay.OrgFingerprint(o.Public()))
	}
	names := make([]string, cfg.Devices)
	for i := range names {
		names[i] = deviceName(cfg, i)
	}
	start := time.Now()
	seats, err := o.InviteAll(ctx, st, names, expires, now)
	if err != nil {
		return nil, fmt.Errorf("sotto-load: %w", err)
	}
	fmt.Fprintf(out, "registered %d invitations in %v\n", len(seats), time.Since(start).Round(time.Millisecond))
	return seats, nil
}

// bootstrapOrg creates the relay's organization as its first admin device
// does (sotto admin init --bootstrap): with a bootstrap code and an
// enrollment, over the relay's protocol, that registers the org key in
// the same transaction, only while the relay has none.
func bootstrapOrg(ctx context.Context, cfg Config, st orgStore, o *orgtest.Org, now, expires time.Time) error {
	secret, err := relay.CreateBootstrap(ctx, st, now, time.Hour)
	if err != nil {
		return fmt.Errorf("sotto-load: bootstrap code: %w", err)
	}
	seat, err := o.BootstrapSeat(secret, cfg.Prefix+"-org", expires, now)
	if err != nil {
		return err
	}
	d := &simDevice{name: seat.Username, reg: 1}
	c, err := enrollDevice(ctx, cfg, d, seat, o.Public(), 4096)
	if err != nil {
		return fmt.Errorf("sotto-load: creating the relay's organization: %w", err)
	}
	c.ws.close()
	return nil
}

func deviceName(cfg Config, i int) string { return fmt.Sprintf("%s-%d", cfg.Prefix, i) }
