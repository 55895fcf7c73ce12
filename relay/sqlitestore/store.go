package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"sotto/relay"
	"sotto/relay/groupsql"
)

// FileName is the database file inside the data directory.
const FileName = "relay.db"

// Options tunes Open.
type Options struct {
	// MaxBatch caps the operations committed in one mailbox transaction.
	MaxBatch int
	// Readers is the size of the read connection pool.
	Readers int
	// PageSize is the page size of a new database (an existing one keeps
	// its own); 0 means DefaultPageSize.
	PageSize int

	// For benchmarks: the WAL size the writer checkpoints at (0:
	// walCheckpointBytes), and no background checkpointer.
	walBytes     int
	noBackground bool

	// For tests: the ring's timing (segments.go); 0 means segEvery and
	// segLag.
	segEvery, segLag time.Duration
}

// DefaultPageSize is the page size of a new database. Small pages suit
// the mailbox: a commit touches many pages a little (an envelope appended
// here, a mailbox entry deleted there), and the WAL takes whole pages.
// Measured in docs/BENCHMARKS.md against 512 and 4096.
const DefaultPageSize = 1024

// walCheckpointBytes is the WAL size at which the writer checkpoints it
// (and to which the file is truncated after). A page rewritten several
// times between checkpoints is copied into the database once, and with
// acked envelopes' pages reused soon most are: 128 MiB rather than
// SQLite's 4 MiB default (or the 32 MiB used before) halves what the
// checkpoints write. The cost: a relay that crashed replays up to this
// much WAL when it opens the database.
const walCheckpointBytes = 128 << 20

// Store implements relay.Store on one SQLite database.
type Store struct {
	*groupsql.Store             // the MLS Delivery Service's tables (groups.go)
	groupW          groupWriter // batches the group store's transactions (groups.go)

	w *sql.DB // one connection: all writes
	r *sql.DB // read pool

	ops      chan *op
	maxBatch int
	stop     chan struct{} // closed by Close
	stopped  chan struct{} // closed when the writer has exited
	closeOne sync.Once

	// Prepared statements by query text: SQLite spends more time parsing
	// SQL than running these small queries.
	rstmts, wstmts sync.Map // string -> *sql.Stmt

	// Asynchronous ops (relay.AsyncMailbox): amu orders their submission
	// before Close; completed carries committed batches to the completer.
	amu           sync.RWMutex
	aclosed       bool
	completed     chan []*op
	completerDone chan struct{}

	sends *sendIndex // the dedupe records' index

	// The ring of log segments (segments.go), writer goroutine only
	// (and Open, before it starts).
	segs             []segment // oldest first; the last is active
	nextSeq          int64     // the next envelope's sequence number
	lastRotate       time.Time
	segEvery, segLag time.Duration
	segClears        atomic.Uint64
	ringOwner        bool        // this store has appended: it turns the ring (segments.go)
	fresh            *freshIndex // the segments' unacked envelopes (fresh.go)
	// wmu is held by the writer from a transaction's start until the
	// ring and fresh index show its commit, and by the other mailbox
	// transactions (fresh.go).
	wmu sync.Mutex

	// Writer statistics, for /metrics.
	commits, committedOps, commitNanos, waitNanos atomic.Uint64

	// The background checkpointer (checkpoint.go).
	ck            *sql.DB
	ckDone        chan struct{}
	bgCheckpoints atomic.Uint64
}

// WriteMetrics writes the writer's counters in Prometheus text format
// (the relay's /metrics calls it through an optional interface).
func (s *Store) WriteMetrics(w io.Writer) {
	c := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	c("sotto_sqlite_commits_total", "Mailbox write transactions committed.", s.commits.Load())
	c("sotto_sqlite_committed_ops_total", "Appends and ack-deletes committed (ops per commit = batch size).", s.committedOps.Load())
	c("sotto_sqlite_commit_seconds_total", "Time spent in mailbox write transactions, in seconds.", s.commitNanos.Load()/1e9)
	c("sotto_sqlite_commit_nanoseconds_total", "Time spent in mailbox write transactions.", s.commitNanos.Load())
	c("sotto_sqlite_op_wait_nanoseconds_total", "Time ops waited from submission to commit, summed.", s.waitNanos.Load())
	c("sotto_sqlite_background_checkpoints_total", "WAL checkpoints run off the writer (checkpoint.go).", s.bgCheckpoints.Load())
	c("sotto_sqlite_segments_cleared_total", "Segments of the envelope log cleared whole (segments.go).", s.segClears.Load())
	fmt.Fprintf(w, "# HELP %[1]s %[2]s\n# TYPE %[1]s gauge\n%[1]s %[3]d\n", "sotto_sqlite_dedupe_records",
		"Send dedupe records in the in-memory index (send_log rows).", s.sends.len())
	fmt.Fprintf(w, "# HELP %[1]s %[2]s\n# TYPE %[1]s gauge\n%[1]s %[3]d\n", "sotto_sqlite_fresh_envelopes",
		"Unacknowledged envelopes of the log's segments, listed in memory (fresh.go).", s.fresh.len())
}

var _ relay.Store = (*Store)(nil)

// Open opens (creating if needed) the database in dir.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 2048
	}
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.walBytes <= 0 {
		opts.walBytes = walCheckpointBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlitestore: %w", err)
	}
	path := filepath.Join(dir, FileName)
	pageSize, err := setPageSize(ctx, path, opts.PageSize)
	if err != nil {
		return nil, err
	}
	pragmas := "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(on)"
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + pragmas
	// A larger page cache keeps the mailbox hot. The WAL is checkpointed
	// by the writer (SQLite's automatic checkpoint), which completes a
	// pass and so lets the WAL start over: a PASSIVE checkpointer alone
	// was tried and let the WAL grow without bound under constant reads
	// and writes. A background checkpointer copies most of it first
	// (checkpoint.go).
	w, err := sql.Open("sqlite", dsn+fmt.Sprintf("&_txlock=immediate&_pragma=cache_size(-16384)&_pragma=wal_autocheckpoint(%d)&_pragma=journal_size_limit(%d)",
		opts.walBytes/pageSize, opts.walBytes))
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if _, err := w.ExecContext(ctx, schema+segTables()+keyLogSchema+groupSchema); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: create schema: %w", err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	if _, err := w.ExecContext(ctx, envelopesView()); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: create schema: %w", err)
	}
	sends := newSendIndex()
	if err := sends.load(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma=query_only(on)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	r.SetMaxOpenConns(opts.Readers)
	r.SetMaxIdleConns(opts.Readers)
	s := &Store{
		w: w, r: r,
		ops:      make(chan *op, 4*opts.MaxBatch),
		maxBatch: opts.MaxBatch,
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),

		completed:     make(chan []*op, 64),
		completerDone: make(chan struct{}),
		sends:         sends,
		segEvery:      cmp.Or(opts.segEvery, segEvery),
		segLag:        cmp.Or(opts.segLag, segLag),
		fresh:         newFreshIndex(),
	}
	if err := s.openSegments(ctx); err != nil {
		s.r.Close()
		s.w.Close()
		return nil, err
	}
	for _, q := range writerQueries() {
		if _, err := stmt(ctx, &s.wstmts, s.w, q); err != nil {
			s.r.Close()
			s.w.Close()
			return nil, err
		}
	}
	ck, err := sql.Open("sqlite", dsn)
	if err != nil {
		s.r.Close()
		s.w.Close()
		return nil, fmt.Errorf("sqlitestore: open: %w", err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	s.ck, s.ckDone = ck, make(chan struct{})
	go s.writer()
	go s.completer()
	if opts.noBackground {
		close(s.ckDone)
	} else {
		go s.checkpointer(ck, path+"-shm", pageSize, opts.walBytes)
	}
	s.Store = groupsql.New(groupDB{s}, false)
	return s, nil
}

// setPageSize gives a new database at path the page size n, before
// anything else creates it (the driver runs DSN pragmas in alphabetical
// order, journal_mode first, and entering WAL mode fixes the page size).
// An existing database keeps its page size.
// It returns the database's page size.
func setPageSize(ctx context.Context, path string, n int) (int, error) {
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath())
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: open: %w", err)
	}
	defer db.Close()
	// n is an int: PRAGMA takes no parameters. Entering WAL mode, on the
	// same connection, writes the new file's header.
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: open: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA page_size = %d`, n)); err != nil {
		return 0, fmt.Errorf("sqlitestore: page size: %w", err)
	}
	var mode string
	if err := conn.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode); err != nil {
		return 0, fmt.Errorf("sqlitestore: journal mode: %w", err)
	}
	var got int
	if err := conn.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&got); err != nil {
		return 0, fmt.Errorf("sqlitestore: page size: %w", err)
	}
	return got, nil
}

// Close stops the writer (after committing what it already took) and
// closes the database.
func (s *Store) Close() error {
	s.closeOne.Do(func() {
		s.amu.Lock()
		s.aclosed = true
		s.amu.Unlock()
		close(s.stop)
	})
	<-s.stopped
	<-s.completerDone
	<-s.ckDone
	s.ck.Close()
	for _, m := range []*sync.Map{&s.rstmts, &s.wstmts} {
		m.Range(func(_, v any) bool { v.(*sql.Stmt).Close(); return true })
	}
	err1 := s.r.Close()
	err2 := s.w.Close()
	if err1 != nil {
		return fmt.Errorf("sqlitestore: close: %w", err1)
	}
	if err2 != nil {
		return fmt.Errorf("sqlitestore: close: %w", err2)
	}
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }

// inTx runs fn in one write transaction.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return nil
}

// stmt returns the statement for q prepared on db, preparing it once.
func stmt(ctx context.Context, cache *sync.Map, db *sql.DB, q string) (*sql.Stmt, error) {
	if st, ok := cache.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := db.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: prepare: %w", err)
	}
	if old, loaded := cache.LoadOrStore(q, st); loaded {
		st.Close()
		return old.(*sql.Stmt), nil
	}
	return st, nil
}

// query runs a read with a cached prepared statement.
func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := stmt(ctx, &s.rstmts, s.r, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// errRow is a Scan-able that reports an error.
type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

// queryRow runs a one-row read with a cached prepared statement.
func (s *Store) queryRow(ctx context.Context, q string, args ...any) interface{ Scan(...any) error } {
	st, err := stmt(ctx, &s.rstmts, s.r, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// txStmt returns q bound to tx: the statement prepared at Open when there
// is one (preparing on s.w here would deadlock: tx holds its only
// connection), else a statement prepared within tx.
func (s *Store) txStmt(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	if st, ok := s.wstmts.Load(q); ok {
		return tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: prepare: %w", err)
	}
	return st, nil
}
