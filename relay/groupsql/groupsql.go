// Package groupsql is the relay's group storage (relay.GroupStore) in
// SQL, shared by relay/sqlitestore and relay/pgstore: each supplies its
// transactions and schema, this package the queries, written in the
// SQL both speak with ? placeholders (pgstore numbers them).
//
// A group message is one row of group_messages whatever the number of
// members; each member device has one row of group_members with its
// cursor (the highest sequence number it acknowledged), the sequence
// number of the commit that added it (it receives that commit's Welcome
// instead of the commit) and of the commit that removed it (it receives
// messages up to that commit).
package groupsql

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"sotto/relay"
)

// Row is one result row.
type Row interface{ Scan(dest ...any) error }

// Rows is a result set.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Tx is a transaction (or, for reads, a connection) of the backend.
type Tx interface {
	Exec(ctx context.Context, q string, args ...any) (int64, error)
	QueryRow(ctx context.Context, q string, args ...any) Row
	Query(ctx context.Context, q string, args ...any) (Rows, error)
	// NoRows reports whether err is the backend's "no rows" error.
	NoRows(err error) bool
}

// DB runs fn in one write transaction (committed, durably, only if fn
// returns nil) or on a read connection.
type DB interface {
	Write(ctx context.Context, fn func(Tx) error) error
	Read(ctx context.Context, fn func(Tx) error) error
}

// Store implements relay.GroupStore on db.
type Store struct {
	db   DB
	lock string // appended to the read of a group's row in a write
}

// New returns the group store over db. forUpdate says the backend takes
// row locks (SELECT ... FOR UPDATE: PostgreSQL), which concurrent writers
// of one group need; SQLite has one writer and no such clause.
func New(db DB, forUpdate bool) *Store {
	s := &Store{db: db}
	if forUpdate {
		s.lock = " FOR UPDATE"
	}
	return s
}

var _ relay.GroupStore = (*Store)(nil)

func dev64(d relay.DeviceAddr) (acct []byte, device int64) { return d.Account[:], int64(d.Device) }

// StoreKeyPackages implements relay.GroupStore.
func (s *Store) StoreKeyPackages(ctx context.Context, dev relay.DeviceAddr, oneTime [][]byte, lastResort []byte) error {
	a, d := dev64(dev)
	return s.db.Write(ctx, func(tx Tx) error {
		for _, kp := range oneTime {
			if _, err := tx.Exec(ctx, `INSERT INTO key_packages (account, device, last_resort, data) VALUES (?, ?, 0, ?)`, a, d, kp); err != nil {
				return fmt.Errorf("groupsql: store key package: %w", err)
			}
		}
		if lastResort != nil {
			if _, err := tx.Exec(ctx, `DELETE FROM key_packages WHERE account = ? AND device = ? AND last_resort = 1`, a, d); err != nil {
				return fmt.Errorf("groupsql: replace last resort key package: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO key_packages (account, device, last_resort, data) VALUES (?, ?, 1, ?)`, a, d, lastResort); err != nil {
				return fmt.Errorf("groupsql: store last resort key package: %w", err)
			}
		}
		return nil
	})
}

// CountKeyPackages implements relay.GroupStore.
func (s *Store) CountKeyPackages(ctx context.Context, dev relay.DeviceAddr) (relay.KeyPackageCount, error) {
	a, d := dev64(dev)
	var c relay.KeyPackageCount
	var oneTime, last int64
	err := s.db.Read(ctx, func(tx Tx) error {
		return tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM key_packages WHERE account = ? AND device = ? AND last_resort = 0),
			(SELECT count(*) FROM key_packages WHERE account = ? AND device = ? AND last_resort = 1)`, a, d, a, d).Scan(&oneTime, &last)
	})
	if err != nil {
		return c, fmt.Errorf("groupsql: count key packages: %w", err)
	}
	c.OneTime, c.HasLastResort = int(oneTime), last > 0
	return c, nil
}

// TakeKeyPackage implements relay.GroupStore.
func (s *Store) TakeKeyPackage(ctx context.Context, dev relay.DeviceAddr) ([]byte, bool, error) {
	a, d := dev64(dev)
	var kp []byte
	var last bool
	err := s.db.Write(ctx, func(tx Tx) error {
		var id, lr int64
		err := tx.QueryRow(ctx, `SELECT id, last_resort, data FROM key_packages WHERE account = ? AND device = ?
			ORDER BY last_resort, id LIMIT 1`, a, d).Scan(&id, &lr, &kp)
		if tx.NoRows(err) {
			return relay.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("groupsql: take key package: %w", err)
		}
		if last = lr == 1; last {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM key_packages WHERE id = ?`, id); err != nil {
			return fmt.Errorf("groupsql: take key package: %w", err)
		}
		return nil
	})
	return kp, last, err
}

// member is one row of group_members.
type member struct {
	addr                   relay.DeviceAddr
	joined, left, position int64
}

func scanAddr(acct []byte, device int64) (relay.DeviceAddr, error) {
	var a relay.DeviceAddr
	if len(acct) != len(a.Account) {
		return a, fmt.Errorf("groupsql: bad account id in group_members")
	}
	copy(a.Account[:], acct)
	a.Device = uint32(device)
	return a, nil
}

// members lists a group's member rows; current only if asked.
func members(ctx context.Context, tx Tx, groupID []byte, currentOnly bool) ([]member, error) {
	q := `SELECT account, device, joined_seq, left_seq, acked_seq FROM group_members WHERE group_id = ?`
	if currentOnly {
		q += ` AND left_seq = 0`
	}
	rows, err := tx.Query(ctx, q, groupID)
	if err != nil {
		return nil, fmt.Errorf("groupsql: members: %w", err)
	}
	defer rows.Close()
	var out []member
	for rows.Next() {
		var acct []byte
		var dev int64
		var m member
		if err := rows.Scan(&acct, &dev, &m.joined, &m.left, &m.position); err != nil {
			return nil, fmt.Errorf("groupsql: members: %w", err)
		}
		if m.addr, err = scanAddr(acct, dev); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("groupsql: members: %w", err)
	}
	return out, nil
}

func isCurrent(ms []member, d relay.DeviceAddr) bool {
	for _, m := range ms {
		if m.addr == d && m.left == 0 {
			return true
		}
	}
	return false
}

func accountIn(ms []member, a relay.AccountID) bool {
	for _, m := range ms {
		if m.addr.Account == a && m.left == 0 {
			return true
		}
	}
	return false
}

func addrs(ms []member) []relay.DeviceAddr {
	out := make([]relay.DeviceAddr, len(ms))
	for i, m := range ms {
		out[i] = m.addr
	}
	return out
}

// catchUpSender moves the sender's cursor over its own message when it
// had acknowledged everything before it (its own messages are not
// delivered back to it, so would otherwise hold back the cleanup).
func catchUpSender(ctx context.Context, tx Tx, groupID []byte, sender relay.DeviceAddr, seq int64) error {
	a, d := dev64(sender)
	if _, err := tx.Exec(ctx, `UPDATE group_members SET acked_seq = ? WHERE group_id = ? AND account = ? AND device = ? AND acked_seq = ?`,
		seq, groupID, a, d, seq-1); err != nil {
		return fmt.Errorf("groupsql: sender cursor: %w", err)
	}
	return nil
}

// CommitGroup implements relay.GroupStore.
func (s *Store) CommitGroup(ctx context.Context, c *relay.GroupCommit) (relay.GroupCommitResult, error) {
	var res relay.GroupCommitResult
	err := s.db.Write(ctx, func(tx Tx) error {
		res = relay.GroupCommitResult{}
		var epoch, next int64
		err := tx.QueryRow(ctx, `SELECT epoch, next_seq FROM mls_groups WHERE id = ?`+s.lock, c.GroupID).Scan(&epoch, &next)
		var ms []member
		switch {
		case tx.NoRows(err):
			if c.Epoch != 0 || c.External {
				return fmt.Errorf("%w: group", relay.ErrNotFound)
			}
			next = 1
			if _, err := tx.Exec(ctx, `INSERT INTO mls_groups (id, epoch, next_seq, group_info, created_ms) VALUES (?, 0, 1, ?, ?)`,
				c.GroupID, orEmpty(c.GroupInfo), c.Timestamp.UnixMilli()); err != nil {
				return fmt.Errorf("groupsql: create group: %w", err)
			}
			a, d := dev64(c.Sender)
			if _, err := tx.Exec(ctx, `INSERT INTO group_members (group_id, account, device, joined_seq, left_seq, acked_seq) VALUES (?, ?, ?, 0, 0, 0)`,
				c.GroupID, a, d); err != nil {
				return fmt.Errorf("groupsql: create group: %w", err)
			}
			ms = []member{{addr: c.Sender}}
		case err != nil:
			return fmt.Errorf("groupsql: commit: %w", err)
		default:
			if ms, err = members(ctx, tx, c.GroupID, false); err != nil {
				return err
			}
			if c.External {
				if !isCurrent(ms, c.Sender) && !accountIn(ms, c.Sender.Account) {
					return fmt.Errorf("%w: an external commit joins a device of a member account", relay.ErrForbidden)
				}
			} else if !isCurrent(ms, c.Sender) {
				return fmt.Errorf("%w: not a member of the group", relay.ErrForbidden)
			}
			if uint64(epoch) != c.Epoch {
				return s.lostCommit(ctx, tx, c, uint64(epoch), &res)
			}
		}
		seq := next
		if _, err := tx.Exec(ctx, `INSERT INTO group_messages (group_id, seq, kind, epoch, ts_ms, sender_account, sender_device, message_id, content, welcome)
			VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)`, c.GroupID, seq, int64(relay.GroupKindCommit), int64(c.Epoch), c.Timestamp.UnixMilli(),
			c.Sender.Account[:], int64(c.Sender.Device), c.Commit, nilIfEmpty(c.Welcome)); err != nil {
			return fmt.Errorf("groupsql: store commit: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE mls_groups SET epoch = ?, next_seq = ?, group_info = ? WHERE id = ?`,
			int64(c.Epoch+1), seq+1, orEmpty(c.GroupInfo), c.GroupID); err != nil {
			return fmt.Errorf("groupsql: commit: %w", err)
		}
		for _, r := range c.Removed {
			a, d := dev64(r)
			if _, err := tx.Exec(ctx, `UPDATE group_members SET left_seq = ? WHERE group_id = ? AND account = ? AND device = ? AND left_seq = 0`,
				seq, c.GroupID, a, d); err != nil {
				return fmt.Errorf("groupsql: remove member: %w", err)
			}
		}
		delivered := addrs(ms)
		added := c.Added
		if c.External {
			// The joiner has the commit it made: its cursor starts past it.
			added = append([]relay.DeviceAddr{c.Sender}, added...)
		}
		for _, ad := range added {
			a, d := dev64(ad)
			if _, err := tx.Exec(ctx, `INSERT INTO group_members (group_id, account, device, joined_seq, left_seq, acked_seq) VALUES (?, ?, ?, ?, 0, ?)
				ON CONFLICT (group_id, account, device) DO UPDATE SET joined_seq = excluded.joined_seq, left_seq = 0, acked_seq = excluded.acked_seq`,
				c.GroupID, a, d, seq, seq-1); err != nil {
				return fmt.Errorf("groupsql: add member: %w", err)
			}
			delivered = append(delivered, ad)
		}
		if err := catchUpSender(ctx, tx, c.GroupID, c.Sender, seq); err != nil {
			return err
		}
		res = relay.GroupCommitResult{Accepted: true, Seq: uint64(seq), Epoch: c.Epoch + 1, Members: delivered}
		return nil
	})
	return res, err
}

// lostCommit fills res for a commit that came too late for its epoch:
// the winner, or acceptance if it is the same commit sent again.
func (s *Store) lostCommit(ctx context.Context, tx Tx, c *relay.GroupCommit, epoch uint64, res *relay.GroupCommitResult) error {
	res.Epoch = epoch
	var seq int64
	var winner []byte
	err := tx.QueryRow(ctx, `SELECT seq, content FROM group_messages WHERE group_id = ? AND kind = ? AND epoch = ?`,
		c.GroupID, int64(relay.GroupKindCommit), int64(c.Epoch)).Scan(&seq, &winner)
	if tx.NoRows(err) {
		// From an epoch the group never had, or whose commit expired.
		return nil
	}
	if err != nil {
		return fmt.Errorf("groupsql: winning commit: %w", err)
	}
	if bytes.Equal(winner, c.Commit) {
		res.Accepted, res.Seq = true, uint64(seq)
		return nil
	}
	res.Winner, res.WinnerSeq = winner, uint64(seq)
	return nil
}

func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// AppendGroup implements relay.GroupStore.
func (s *Store) AppendGroup(ctx context.Context, m *relay.GroupSend) (relay.GroupSendResult, error) {
	var res relay.GroupSendResult
	err := s.db.Write(ctx, func(tx Tx) error {
		res = relay.GroupSendResult{}
		var next int64
		err := tx.QueryRow(ctx, `SELECT next_seq FROM mls_groups WHERE id = ?`+s.lock, m.GroupID).Scan(&next)
		if tx.NoRows(err) {
			return fmt.Errorf("%w: group", relay.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("groupsql: send: %w", err)
		}
		a, d := dev64(m.Sender)
		var left int64
		err = tx.QueryRow(ctx, `SELECT left_seq FROM group_members WHERE group_id = ? AND account = ? AND device = ?`,
			m.GroupID, a, d).Scan(&left)
		if tx.NoRows(err) || (err == nil && left != 0) {
			return fmt.Errorf("%w: not a member of the group", relay.ErrForbidden)
		}
		if err != nil {
			return fmt.Errorf("groupsql: send: %w", err)
		}
		var seq int64
		err = tx.QueryRow(ctx, `SELECT seq FROM group_messages WHERE group_id = ? AND sender_account = ? AND sender_device = ? AND message_id = ?`,
			m.GroupID, a, d, m.MessageID).Scan(&seq)
		if err == nil {
			res = relay.GroupSendResult{Seq: uint64(seq), Duplicate: true}
			return nil
		}
		if !tx.NoRows(err) {
			return fmt.Errorf("groupsql: send: %w", err)
		}
		seq = next
		if _, err := tx.Exec(ctx, `INSERT INTO group_messages (group_id, seq, kind, epoch, ts_ms, sender_account, sender_device, message_id, content, welcome)
			VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, NULL)`, m.GroupID, seq, int64(relay.GroupKindMessage), m.Timestamp.UnixMilli(), a, d, m.MessageID, m.Content); err != nil {
			return fmt.Errorf("groupsql: store group message: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE mls_groups SET next_seq = ? WHERE id = ?`, seq+1, m.GroupID); err != nil {
			return fmt.Errorf("groupsql: send: %w", err)
		}
		if err := catchUpSender(ctx, tx, m.GroupID, m.Sender, seq); err != nil {
			return err
		}
		res = relay.GroupSendResult{Seq: uint64(seq)}
		return nil
	})
	return res, err
}

// body is what a member device is delivered of a group message: the
// Welcome at the commit that added it, else the content.
const body = `(CASE WHEN m.seq = gm.joined_seq THEN m.welcome ELSE m.content END)`

// FetchGroups implements relay.GroupStore: a content above
// relay.GroupInlineMax is left out, with its size.
func (s *Store) FetchGroups(ctx context.Context, dev relay.DeviceAddr, limit int) ([]relay.GroupMessage, error) {
	a, d := dev64(dev)
	var out []relay.GroupMessage
	err := s.db.Read(ctx, func(tx Tx) error {
		rows, err := tx.Query(ctx, `SELECT m.group_id, m.seq, m.kind, m.epoch, m.ts_ms, gm.joined_seq, coalesce(length(`+body+`), 0),
				CASE WHEN length(`+body+`) <= ? THEN `+body+` END
			FROM group_members gm JOIN group_messages m ON m.group_id = gm.group_id
			WHERE gm.account = ? AND gm.device = ? AND m.seq > gm.acked_seq AND m.seq >= gm.joined_seq
				AND (gm.left_seq = 0 OR m.seq <= gm.left_seq)
				AND NOT (m.sender_account = gm.account AND m.sender_device = gm.device)
			ORDER BY m.group_id, m.seq LIMIT ?`, int64(relay.GroupInlineMax), a, d, int64(limit))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var g relay.GroupMessage
			var seq, kind, epoch, ts, joined, size int64
			if err := rows.Scan(&g.GroupID, &seq, &kind, &epoch, &ts, &joined, &size, &g.Content); err != nil {
				return err
			}
			g.Seq, g.Kind, g.Epoch, g.Timestamp, g.Size = uint64(seq), uint8(kind), uint64(epoch), time.UnixMilli(ts), uint64(size)
			if seq == joined {
				g.Kind = relay.GroupKindWelcome
			}
			if g.Size <= relay.GroupInlineMax && g.Content == nil {
				g.Content = []byte{}
			}
			out = append(out, g)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("groupsql: fetch: %w", err)
	}
	return out, nil
}

// ReadGroup implements relay.GroupStore.
func (s *Store) ReadGroup(ctx context.Context, dev relay.DeviceAddr, groupID []byte, seq, offset uint64, n int) ([]byte, uint64, uint64, error) {
	a, d := dev64(dev)
	var data []byte
	var total, epoch int64
	err := s.db.Read(ctx, func(tx Tx) error {
		var err error
		if seq == 0 {
			var ok int64
			err = tx.QueryRow(ctx, `SELECT g.epoch, length(g.group_info), substr(g.group_info, ?, ?),
					(SELECT count(*) FROM group_members gm WHERE gm.group_id = g.id AND gm.account = ? AND gm.left_seq = 0)
				FROM mls_groups g WHERE g.id = ?`, int64(offset)+1, int64(n), a, groupID).Scan(&epoch, &total, &data, &ok)
			if err == nil && ok == 0 {
				return fmt.Errorf("%w: group", relay.ErrNotFound)
			}
		} else {
			err = tx.QueryRow(ctx, `SELECT m.epoch, coalesce(length(`+body+`), 0), substr(`+body+`, ?, ?)
				FROM group_members gm JOIN group_messages m ON m.group_id = gm.group_id
				WHERE gm.group_id = ? AND gm.account = ? AND gm.device = ? AND m.seq = ? AND m.seq >= gm.joined_seq
					AND (gm.left_seq = 0 OR m.seq <= gm.left_seq)
					AND NOT (m.sender_account = gm.account AND m.sender_device = gm.device)`,
				int64(offset)+1, int64(n), groupID, a, d, int64(seq)).Scan(&epoch, &total, &data)
		}
		if tx.NoRows(err) {
			return fmt.Errorf("%w: group message", relay.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("groupsql: read: %w", err)
	}
	if offset > uint64(total) {
		return nil, 0, 0, fmt.Errorf("%w: offset past the end", relay.ErrBadRequest)
	}
	if data == nil {
		data = []byte{}
	}
	return data, uint64(total), uint64(epoch), nil
}

// AckGroups implements relay.GroupStore.
func (s *Store) AckGroups(ctx context.Context, dev relay.DeviceAddr, acks []relay.GroupAck) error {
	a, d := dev64(dev)
	return s.db.Write(ctx, func(tx Tx) error {
		for _, k := range acks {
			if _, err := tx.Exec(ctx, `UPDATE group_members SET acked_seq = ? WHERE group_id = ? AND account = ? AND device = ? AND acked_seq < ?`,
				int64(k.Seq), k.GroupID, a, d, int64(k.Seq)); err != nil {
				return fmt.Errorf("groupsql: ack: %w", err)
			}
		}
		return nil
	})
}

// Group implements relay.GroupStore.
func (s *Store) Group(ctx context.Context, groupID []byte) (relay.GroupState, error) {
	var st relay.GroupState
	err := s.db.Read(ctx, func(tx Tx) error {
		var epoch int64
		err := tx.QueryRow(ctx, `SELECT epoch, group_info FROM mls_groups WHERE id = ?`, groupID).Scan(&epoch, &st.GroupInfo)
		if tx.NoRows(err) {
			return fmt.Errorf("%w: group", relay.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("groupsql: group: %w", err)
		}
		st.Epoch = uint64(epoch)
		ms, err := members(ctx, tx, groupID, true)
		st.Members = addrs(ms)
		return err
	})
	return st, err
}

// ExpireGroups implements relay.GroupStore.
func (s *Store) ExpireGroups(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.db.Write(ctx, func(tx Tx) error {
		old, err := tx.Exec(ctx, `DELETE FROM group_messages WHERE ts_ms < ?`, before.UnixMilli())
		if err != nil {
			return err
		}
		// Removed devices that have the commit removing them (or whose
		// messages expired) are forgotten.
		if _, err := tx.Exec(ctx, `DELETE FROM group_members WHERE left_seq > 0 AND (acked_seq >= left_seq OR NOT EXISTS
			(SELECT 1 FROM group_messages m WHERE m.group_id = group_members.group_id AND m.seq = group_members.left_seq))`); err != nil {
			return err
		}
		done, err := tx.Exec(ctx, `DELETE FROM group_messages WHERE seq <= (SELECT min(gm.acked_seq) FROM group_members gm WHERE gm.group_id = group_messages.group_id)`)
		if err != nil {
			return err
		}
		n = old + done
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("groupsql: expire: %w", err)
	}
	return n, nil
}

// GroupSeqsDense reports that every group's messages and commits are
// numbered 1, 2, 3, … (mls_groups.next_seq): the relay may push small
// messages inline (relay.GroupSeqsDense).
func (s *Store) GroupSeqsDense() bool { return true }
