package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"sotto/relay"
	"sotto/relay/natsbus"
	"sotto/relay/natsgroups"
	"sotto/relay/natsmailbox"
	"sotto/relay/pgstore"
	"sotto/relay/sqlitestore"
)

// BackendConfig chooses the store and the bus (DESIGN §8): SQLite and the
// in-process bus for one node; PostgreSQL and NATS for several nodes
// behind one address.
type BackendConfig struct {
	Store       string // "sqlite" (in -data) or "postgres"
	PostgresURL string // with -store postgres
	PGSchema    string // PostgreSQL schema ("" = the search_path's default)
	Bus         string // "local" or "nats"
	NATSURL     string // with -bus nats or -mailbox jetstream; comma-separated servers
	// Mailbox is "store" (the mailbox of -store) or "jetstream" (a NATS
	// JetStream stream, relay/natsmailbox, and the groups in JetStream
	// too, relay/natsgroups; -nats-url).
	Mailbox string
	// Groups is where a relay on -mailbox jetstream keeps its groups:
	// "" (JetStream, beside the mailbox) or "store" (the -store
	// database, where they were before relay/natsgroups existed).
	Groups string
	// JetStreamName names the stream of -mailbox jetstream; its subjects,
	// dedupe bucket and group bucket and stream are derived from it.
	JetStreamName string
}

func defaultBackendConfig() BackendConfig {
	return BackendConfig{Store: "sqlite", Bus: "local", Mailbox: "store", JetStreamName: "SOTTO_MAILBOX"}
}

func backendFlags(fs *flag.FlagSet, c *BackendConfig) {
	fs.StringVar(&c.Store, "store", c.Store, "storage backend: sqlite (in -data) or postgres (-postgres-url)")
	fs.StringVar(&c.PostgresURL, "postgres-url", c.PostgresURL, "PostgreSQL URL for -store postgres, e.g. postgres://sotto@db:5432/sotto")
	fs.StringVar(&c.PGSchema, "postgres-schema", c.PGSchema, "PostgreSQL schema for the relay's tables (created if missing; default: the search_path's)")
	fs.StringVar(&c.Bus, "bus", c.Bus, "wake-up bus between relay nodes: local (one node) or nats (-nats-url)")
	fs.StringVar(&c.NATSURL, "nats-url", c.NATSURL, "NATS server(s) for -bus nats and -mailbox jetstream, e.g. nats://127.0.0.1:4222 (comma-separated)")
	fs.StringVar(&c.JetStreamName, "jetstream-name", c.JetStreamName, "JetStream stream of -mailbox jetstream (relays sharing a mailbox use the same)")
	fs.StringVar(&c.Mailbox, "mailbox", c.Mailbox, "where envelopes and groups wait: store (the -store database) or jetstream (NATS JetStream at -nats-url; run nats-server with sync_interval: always)")
	fs.StringVar(&c.Groups, "groups", c.Groups, "with -mailbox jetstream, where groups are kept: jetstream (default) or store (the -store database, as before groups moved to JetStream)")
}

// problems lists every problem of c.
func (c BackendConfig) problems() []error {
	var errs []error
	switch c.Store {
	case "sqlite":
		if c.PostgresURL != "" || c.PGSchema != "" {
			errs = append(errs, errors.New("-postgres-url and -postgres-schema go with -store postgres"))
		}
	case "postgres":
		if c.PostgresURL == "" {
			errs = append(errs, errors.New("-store postgres needs -postgres-url"))
		} else if _, err := pgxpool.ParseConfig(c.PostgresURL); err != nil {
			// pgx's parse errors redact the password.
			errs = append(errs, fmt.Errorf("-postgres-url: %v", err))
		}
	default:
		errs = append(errs, fmt.Errorf("-store %q: want sqlite or postgres", c.Store))
	}
	if c.Mailbox != "store" && c.Mailbox != "jetstream" {
		errs = append(errs, fmt.Errorf("-mailbox %q: want store or jetstream", c.Mailbox))
	}
	switch {
	case c.Groups != "" && c.Groups != "jetstream" && c.Groups != "store":
		errs = append(errs, fmt.Errorf("-groups %q: want jetstream or store", c.Groups))
	case c.Groups != "" && c.Mailbox != "jetstream":
		errs = append(errs, errors.New("-groups goes with -mailbox jetstream (with -mailbox store, groups are in the -store database)"))
	}
	if c.Mailbox == "jetstream" && !jsName.MatchString(c.JetStreamName) {
		errs = append(errs, fmt.Errorf("-jetstream-name %q: want letters, digits and _ (at most 32)", c.JetStreamName))
	}
	natsUsed := c.Bus == "nats" || c.Mailbox == "jetstream"
	switch {
	case natsUsed && c.NATSURL == "":
		errs = append(errs, errors.New("-bus nats and -mailbox jetstream need -nats-url"))
	case !natsUsed && c.NATSURL != "":
		errs = append(errs, errors.New("-nats-url goes with -bus nats or -mailbox jetstream"))
	}
	if natsUsed {
		for _, s := range strings.Split(c.NATSURL, ",") {
			if s == "" {
				continue
			}
			u, err := url.Parse(strings.TrimSpace(s))
			if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "tls" && u.Scheme != "ws" && u.Scheme != "wss") {
				errs = append(errs, fmt.Errorf("-nats-url: %q is not a nats://, tls://, ws:// or wss:// URL", redactURL(s)))
			}
		}
	}
	switch c.Bus {
	case "local":
	case "nats":
		if c.Store == "sqlite" {
			errs = append(errs, errors.New("-bus nats links relay nodes that share one store: use it with -store postgres"))
		}
	default:
		errs = append(errs, fmt.Errorf("-bus %q: want local or nats", c.Bus))
	}
	return errs
}

var jsName = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// jetStreamOptions derives the stream's subjects and bucket from its name.
func jetStreamOptions(name string, ttl, dedupeTTL time.Duration) natsmailbox.Options {
	low := strings.ToLower(name)
	return natsmailbox.Options{Stream: name, Subjects: "sotto.mb." + low, Bucket: low + "_sends", TTL: ttl, DedupeTTL: dedupeTTL}
}

// jetStreamGroupOptions derives the group store's bucket and stream
// (relay/natsgroups) from the mailbox stream's name.
func jetStreamGroupOptions(name string) natsgroups.Options {
	low := strings.ToLower(name)
	return natsgroups.Options{Bucket: low + "_groups", Stream: name + "_GROUPS", Subjects: "sotto.grp." + low}
}

// jetStreamMailbox is the JetStream mailbox with the JetStream group
// store beside it: the relay finds a relay.GroupStore on its Mailbox
// before its Directory, so that a relay on JetStream keeps its groups
// there too, not in the SQL store.
type jetStreamMailbox struct {
	*natsmailbox.Mailbox
	*natsgroups.Store
}

var (
	_ relay.Mailbox    = jetStreamMailbox{}
	_ relay.GroupStore = jetStreamMailbox{}
)

// Close closes both.
func (m jetStreamMailbox) Close() error {
	return errors.Join(m.Mailbox.Close(), m.Store.Close())
}

// redactURL hides a password in a URL for error messages.
func redactURL(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}

// backends are the opened store, mailbox and bus.
type backends struct {
	store   relay.Store
	mailbox relay.Mailbox // the store, or a JetStream mailbox
	bus     relay.Bus     // nil: the relay's LocalBus
	close   func()        // closes the NATS connection
}

// openBackends opens the configured store, mailbox and bus; ttl is the
// mailbox TTL (the JetStream stream's MaxAge).
func openBackends(ctx context.Context, dataDir string, c BackendConfig, ttl, dedupeTTL time.Duration, log *slog.Logger) (*backends, error) {
	b := &backends{close: func() {}}
	switch c.Store {
	case "postgres":
		s, err := pgstore.Open(ctx, c.PostgresURL, pgstore.Options{Schema: c.PGSchema})
		if err != nil {
			return nil, err
		}
		b.store = s
	default:
		s, err := sqlitestore.Open(ctx, dataDir, sqlitestore.Options{})
		if err != nil {
			return nil, err
		}
		b.store = s
	}
	b.mailbox = b.store
	if c.Bus != "nats" && c.Mailbox != "jetstream" {
		return b, nil
	}
	nc, err := natsbus.Connect(c.NATSURL, log)
	if err != nil {
		b.store.Close()
		return nil, err
	}
	b.close = nc.Close // flushes what is buffered, then closes
	if c.Bus == "nats" {
		b.bus = natsbus.New(nc, log, natsbus.Options{})
	}
	if c.Mailbox == "jetstream" {
		mb, err := natsmailbox.Open(ctx, nc, jetStreamOptions(c.JetStreamName, ttl, dedupeTTL))
		if err != nil {
			nc.Close()
			b.store.Close()
			return nil, err
		}
		if c.Groups == "store" {
			b.mailbox = mb // the relay finds the groups in the store
			return b, nil
		}
		if err := noGroupsLeftBehind(ctx, b.store); err != nil {
			mb.Close()
			nc.Close()
			b.store.Close()
			return nil, err
		}
		gs, err := natsgroups.Open(ctx, nc, jetStreamGroupOptions(c.JetStreamName))
		if err != nil {
			mb.Close()
			nc.Close()
			b.store.Close()
			return nil, err
		}
		b.mailbox = jetStreamMailbox{Mailbox: mb, Store: gs}
	}
	return b, nil
}

// ErrGroupsInStore refuses to start a relay on -mailbox jetstream that
// would keep its groups in JetStream while its SQL store still holds
// groups (made before relay/natsgroups existed): their members would
// lose them.
var ErrGroupsInStore = errors.New("groups are in the store")

// noGroupsLeftBehind returns ErrGroupsInStore when the store holds groups.
func noGroupsLeftBehind(ctx context.Context, store relay.Store) error {
	counter, ok := store.(interface {
		CountGroups(context.Context) (int64, error)
	})
	if !ok {
		return nil
	}
	n, err := counter.CountGroups(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%w: the -store database holds %d groups from before -mailbox jetstream kept groups in JetStream; start with -groups store to keep serving them from there (with the default, their members would lose them)", ErrGroupsInStore, n)
	}
	return nil
}

// adminStore is what `sottod admin` needs of a store.
type adminStore interface {
	relay.Store
	relay.OrgKeyStore
	relay.OrgDocumentStore
	SetAccountExpiry(ctx context.Context, id relay.AccountID, expires time.Time) error
}

var (
	_ adminStore = (*sqlitestore.Store)(nil)
	_ adminStore = (*pgstore.Store)(nil)
)

// adminStoreFlags registers the store flags of `sottod admin` (the same
// as serve's, so that the admin reaches the relay's database).
func adminStoreFlags(fs *flag.FlagSet) *BackendConfig {
	c := defaultBackendConfig()
	fs.StringVar(&c.Store, "store", c.Store, "storage backend: sqlite (in -data) or postgres (-postgres-url)")
	fs.StringVar(&c.PostgresURL, "postgres-url", c.PostgresURL, "PostgreSQL URL for -store postgres")
	fs.StringVar(&c.PGSchema, "postgres-schema", c.PGSchema, "PostgreSQL schema of the relay's tables")
	return &c
}

// openAdminStore opens the store of c for administration.
func openAdminStore(ctx context.Context, dataDir string, c BackendConfig) (adminStore, error) {
	c.Bus, c.NATSURL, c.Mailbox = "local", "", "store"
	if err := errors.Join(c.problems()...); err != nil {
		return nil, err
	}
	if c.Store == "postgres" {
		return pgstore.Open(ctx, c.PostgresURL, pgstore.Options{Schema: c.PGSchema, MaxConns: 2})
	}
	return sqlitestore.Open(ctx, dataDir, sqlitestore.Options{Readers: 1})
}
