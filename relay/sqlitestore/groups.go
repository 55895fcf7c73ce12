package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"sotto/relay"
	"sotto/relay/groupsql"
)

// groupSchema holds the MLS Delivery Service's tables (relay/groupsql).
// group_messages keeps its rowid: a WITHOUT ROWID row holding a 1 KiB
// message spilled into an overflow page (4.7 KB per message against
// 1.4 KB, BenchmarkGroupFanOutStorage).
const groupSchema = `
CREATE TABLE IF NOT EXISTS key_packages (
	id          INTEGER PRIMARY KEY,
	account     BLOB NOT NULL,
	device      INTEGER NOT NULL,
	last_resort INTEGER NOT NULL,
	data        BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS key_packages_by_device ON key_packages (account, device, last_resort, id);
CREATE TABLE IF NOT EXISTS mls_groups (
	id         BLOB PRIMARY KEY,
	epoch      INTEGER NOT NULL,
	next_seq   INTEGER NOT NULL,
	group_info BLOB NOT NULL,
	created_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members (
	group_id   BLOB NOT NULL,
	account    BLOB NOT NULL,
	device     INTEGER NOT NULL,
	joined_seq INTEGER NOT NULL,
	left_seq   INTEGER NOT NULL,
	acked_seq  INTEGER NOT NULL,
	PRIMARY KEY (group_id, account, device)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS group_members_by_device ON group_members (account, device);
CREATE TABLE IF NOT EXISTS group_messages (
	group_id       BLOB NOT NULL,
	seq            INTEGER NOT NULL,
	kind           INTEGER NOT NULL,
	epoch          INTEGER NOT NULL,
	ts_ms          INTEGER NOT NULL,
	sender_account BLOB NOT NULL,
	sender_device  INTEGER NOT NULL,
	message_id     BLOB,
	content        BLOB NOT NULL,
	welcome        BLOB,
	PRIMARY KEY (group_id, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS group_messages_sends ON group_messages (group_id, sender_account, sender_device, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS group_messages_commits ON group_messages (group_id, epoch) WHERE kind = 2;
CREATE INDEX IF NOT EXISTS group_messages_by_age ON group_messages (ts_ms);
`

var _ relay.GroupStore = (*Store)(nil)

// The relay.GroupStore methods are groupsql.Store's, promoted from the
// Store's embedded *groupsql.Store (set by Open over groupDB).

// groupDB runs groupsql's transactions on the writer connection and its
// reads on the read pool.
type groupDB struct{ s *Store }

// Write runs fn in a transaction shared with the group writes queued at
// the same time (groupWriter): a thousand member devices acknowledging
// one group message cost one fsync, not a thousand.
func (g groupDB) Write(ctx context.Context, fn func(groupsql.Tx) error) error {
	return g.s.groupW.do(ctx, g.s, fn)
}

// groupWriter commits the group store's writes in batches, with no
// goroutine of its own (group commit, leader and followers): a write
// queues itself; if no batch is running its caller runs one, with every
// write queued by then, each inside a savepoint (a failing write is
// rolled back alone), and commits once; a write queued meanwhile waits,
// and the first of them runs the next batch. Each caller returns once
// its write is durable, or failed.
type groupWriter struct {
	mu      sync.Mutex
	queue   []*groupOp
	running bool
}

type groupOp struct {
	ctx  context.Context
	fn   func(groupsql.Tx) error
	err  error
	done chan struct{} // closed when the batch holding it ended
	lead chan struct{} // closed when this op's caller is to run the next batch
}

// maxGroupBatch bounds the writes of one transaction.
const maxGroupBatch = 512

func (w *groupWriter) do(ctx context.Context, s *Store, fn func(groupsql.Tx) error) error {
	op := &groupOp{ctx: ctx, fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	w.mu.Lock()
	w.queue = append(w.queue, op)
	if w.running {
		w.mu.Unlock()
		select {
		case <-op.done:
			return op.err
		case <-op.lead:
		}
		w.mu.Lock()
	}
	w.running = true
	n := min(len(w.queue), maxGroupBatch)
	batch := w.queue[:n:n]
	w.queue = w.queue[n:]
	w.mu.Unlock()

	s.runGroupBatch(batch)

	w.mu.Lock()
	if len(w.queue) > 0 {
		close(w.queue[0].lead) // the next batch is its caller's
	} else {
		w.running = false
	}
	w.mu.Unlock()
	return op.err
}

// runGroupBatch runs ops in one transaction, each in a savepoint, and
// ends each op.
func (s *Store) runGroupBatch(ops []*groupOp) {
	defer func() {
		for _, op := range ops {
			close(op.done)
		}
	}()
	ctx := context.Background() // each op's own context is checked before it runs
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, op := range ops {
			if op.err = op.ctx.Err(); op.err != nil {
				continue
			}
			if _, err := tx.ExecContext(ctx, `SAVEPOINT g`); err != nil {
				return err
			}
			if op.err = op.fn(sqlTx{tx}); op.err != nil {
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO g`); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, `RELEASE g`); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, op := range ops {
			if op.err == nil {
				op.err = err
			}
		}
	}
}

func (g groupDB) Read(ctx context.Context, fn func(groupsql.Tx) error) error {
	return fn(sqlTx{g.s.r})
}

// sqlConn is what *sql.Tx and *sql.DB have in common.
type sqlConn interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

type sqlTx struct{ c sqlConn }

func (t sqlTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	r, err := t.c.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

func (t sqlTx) QueryRow(ctx context.Context, q string, args ...any) groupsql.Row {
	return t.c.QueryRowContext(ctx, q, args...)
}

func (t sqlTx) Query(ctx context.Context, q string, args ...any) (groupsql.Rows, error) {
	r, err := t.c.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{r}, nil
}

func (sqlTx) NoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
