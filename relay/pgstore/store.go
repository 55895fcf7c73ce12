package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"sotto/relay"
	"sotto/relay/groupsql"
)

// Options tunes Open.
type Options struct {
	// Schema is the PostgreSQL schema holding the tables ("" = the
	// connection's default search_path). It is created if missing.
	Schema string
	// MaxBatch caps the operations committed in one mailbox batch (1024).
	MaxBatch int
	// MaxConns is the pool size (default: pgxpool's).
	MaxConns int32
}

// Store implements relay.Store on PostgreSQL.
type Store struct {
	*groupsql.Store // the MLS Delivery Service's tables (groups.go)

	pool *pgxpool.Pool

	ops      chan *op
	maxBatch int
	stop     chan struct{} // closed by Close
	stopped  chan struct{} // closed when the writer has exited
	closeOne sync.Once

	commits, committedOps, commitNanos, waitNanos atomic.Uint64
}

var (
	_ relay.Store            = (*Store)(nil)
	_ relay.OrgKeyStore      = (*Store)(nil)
	_ relay.OrgDocumentStore = (*Store)(nil)
	_ relay.MetricsWriter    = (*Store)(nil)
)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to the database at url (a libpq URL or key=value DSN),
// applies the pending schema migrations and starts the mailbox writer.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 1024
	}
	if opts.Schema != "" && !schemaName.MatchString(opts.Schema) {
		return nil, fmt.Errorf("pgstore: bad schema name %q (want [a-z_][a-z0-9_]*)", opts.Schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgstore: parse url: %w", err)
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	rp := cfg.ConnConfig.RuntimeParams
	// Acknowledged means committed to disk on the primary, whatever the
	// server's default.
	rp["synchronous_commit"] = "on"
	if opts.Schema != "" {
		rp["search_path"] = opts.Schema
	}
	if opts.Schema != "" {
		// Create the schema on a connection that does not depend on it.
		c, err := pgx.ConnectConfig(ctx, withoutSearchPath(cfg.ConnConfig))
		if err != nil {
			return nil, fmt.Errorf("pgstore: connect: %w", err)
		}
		_, err = c.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{opts.Schema}.Sanitize())
		c.Close(ctx)
		if err != nil && !isUniqueViolation(err) { // concurrent creators race on the catalog
			return nil, fmt.Errorf("pgstore: create schema: %w", err)
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{
		pool:     pool,
		ops:      make(chan *op, 4*opts.MaxBatch),
		maxBatch: opts.MaxBatch,
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	go s.writer()
	s.Store = groupsql.New(groupDB{s}, true)
	return s, nil
}

func withoutSearchPath(c *pgx.ConnConfig) *pgx.ConnConfig {
	c = c.Copy()
	delete(c.RuntimeParams, "search_path")
	return c
}

// Close stops the writer (after committing what it already took) and
// closes the pool.
func (s *Store) Close() error {
	s.closeOne.Do(func() { close(s.stop) })
	<-s.stopped
	s.pool.Close()
	return nil
}

// Pool returns the connection pool (for administration and tests).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// WriteMetrics implements relay.MetricsWriter.
func (s *Store) WriteMetrics(w io.Writer) {
	c := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	c("sotto_pg_commits_total", "Mailbox write batches committed.", s.commits.Load())
	c("sotto_pg_committed_ops_total", "Appends and ack-deletes committed (ops per commit = batch size).", s.committedOps.Load())
	c("sotto_pg_commit_nanoseconds_total", "Time spent in mailbox write batches.", s.commitNanos.Load())
	c("sotto_pg_op_wait_nanoseconds_total", "Time ops waited from submission to commit, summed.", s.waitNanos.Load())
	st := s.pool.Stat()
	fmt.Fprintf(w, "# HELP sotto_pg_pool_conns Open pool connections.\n# TYPE sotto_pg_pool_conns gauge\nsotto_pg_pool_conns %d\n", st.TotalConns())
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }

// inTx runs fn in one transaction.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	select {
	case <-s.stop:
		return relay.ErrClosed
	default:
	}
	return pgx.BeginFunc(ctx, s.pool, fn)
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
