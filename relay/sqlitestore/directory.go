package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"sotto/relay"
)

// CreateCode implements relay.Directory.
func (s *Store) CreateCode(ctx context.Context, c relay.Code) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO codes (id, hash, seats, used, created_ms, expires_ms, revoked, note) VALUES (?, ?, ?, 0, ?, ?, 0, ?)`,
		c.ID, c.Hash[:], c.Seats, ms(c.Created), ms(c.Expires), c.Note)
	if err != nil {
		return fmt.Errorf("sqlitestore: create code: %w", err)
	}
	return nil
}

// Codes implements relay.Directory.
func (s *Store) Codes(ctx context.Context) ([]relay.Code, error) {
	rows, err := s.query(ctx, `SELECT id, hash, seats, used, created_ms, expires_ms, revoked, note FROM codes ORDER BY created_ms, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: codes: %w", err)
	}
	defer rows.Close()
	var out []relay.Code
	for rows.Next() {
		var (
			c              relay.Code
			hash           []byte
			created, expir int64
		)
		if err := rows.Scan(&c.ID, &hash, &c.Seats, &c.Used, &created, &expir, &c.Revoked, &c.Note); err != nil {
			return nil, fmt.Errorf("sqlitestore: codes: %w", err)
		}
		copy(c.Hash[:], hash)
		c.Created, c.Expires = fromMS(created), fromMS(expir)
		out = append(out, c)
	}
	return out, rowsErr(rows)
}

// RevokeCode implements relay.Directory.
func (s *Store) RevokeCode(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE codes SET revoked = 1 WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlitestore: revoke code: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return relay.ErrNotFound
	}
	return nil
}

// Enroll implements relay.Directory.
func (s *Store) Enroll(ctx context.Context, a relay.NewAccount, now time.Time) (relay.Account, relay.Device, error) {
	var (
		acct relay.Account
		dev  relay.Device
	)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			codeID      string
			seats, used int
			expires     int64
			revoked     bool
		)
		err := tx.QueryRowContext(ctx, `SELECT id, seats, used, expires_ms, revoked FROM codes WHERE hash = ?`, a.CodeHash[:]).
			Scan(&codeID, &seats, &used, &expires, &revoked)
		if errors.Is(err, sql.ErrNoRows) {
			return relay.ErrBadCode
		}
		if err != nil {
			return fmt.Errorf("sqlitestore: enroll: %w", err)
		}
		if revoked || used >= seats || !now.Before(fromMS(expires)) {
			return relay.ErrBadCode
		}
		var taken int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM accounts WHERE username = ?`, a.Username).Scan(&taken); err != nil {
			return fmt.Errorf("sqlitestore: enroll: %w", err)
		}
		if taken > 0 {
			return relay.ErrConflict
		}
		if _, err := tx.ExecContext(ctx, `UPDATE codes SET used = used + 1 WHERE id = ?`, codeID); err != nil {
			return fmt.Errorf("sqlitestore: enroll: %w", err)
		}
		acct = relay.Account{ID: a.ID, Username: a.Username, IdentityKey: a.IdentityKey, Created: now, Expires: fromMS(expires)}
		if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, username, identity_key, created_ms, expires_ms, next_device) VALUES (?, ?, ?, ?, ?, 2)`,
			a.ID[:], a.Username, a.IdentityKey, ms(now), expires); err != nil {
			return fmt.Errorf("sqlitestore: enroll: %w", err)
		}
		if err := appendLogLeaf(ctx, tx, a); err != nil {
			return err
		}
		if err := bindOrg(ctx, tx, a); err != nil {
			return err
		}
		dev = a.Device
		dev.Addr = relay.DeviceAddr{Account: a.ID, Device: 1}
		dev.Created, dev.LastSeen = now, now
		if err := insertDevice(ctx, tx, dev); err != nil {
			return err
		}
		return storePreKeys(ctx, tx, dev.Addr, a.PreKeys)
	})
	return acct, dev, err
}

func insertDevice(ctx context.Context, tx *sql.Tx, d relay.Device) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO devices (account, device, device_key, registration_id, name, created_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		d.Addr.Account[:], d.Addr.Device, d.DeviceKey, d.RegistrationID, d.Name, ms(d.Created), ms(d.LastSeen))
	if err != nil {
		return fmt.Errorf("sqlitestore: insert device: %w", err)
	}
	return nil
}

// CreateLinkToken implements relay.Directory.
func (s *Store) CreateLinkToken(ctx context.Context, acct relay.AccountID, hash [32]byte, expires time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM link_tokens WHERE expires_ms < ?`, ms(time.Now())); err != nil {
			return fmt.Errorf("sqlitestore: link token: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO link_tokens (hash, account, expires_ms) VALUES (?, ?, ?)`, hash[:], acct[:], ms(expires)); err != nil {
			return fmt.Errorf("sqlitestore: link token: %w", err)
		}
		return nil
	})
}

// LinkDevice implements relay.Directory.
func (s *Store) LinkDevice(ctx context.Context, tokenHash [32]byte, identityKey []byte, d relay.Device, keys relay.PreKeys, maxDevices int, now time.Time) (relay.Account, relay.Device, error) {
	var acct relay.Account
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var (
			id      []byte
			expires int64
		)
		err := tx.QueryRowContext(ctx, `DELETE FROM link_tokens WHERE hash = ? RETURNING account, expires_ms`, tokenHash[:]).Scan(&id, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return relay.ErrBadToken
		}
		if err != nil {
			return fmt.Errorf("sqlitestore: link: %w", err)
		}
		if !now.Before(fromMS(expires)) {
			return relay.ErrBadToken
		}
		var next int64
		acct, next, err = scanAccount(tx.QueryRowContext(ctx, accountCols+` WHERE id = ?`, id))
		if err != nil {
			return err
		}
		if acct.Revoked {
			return relay.ErrRevoked
		}
		if string(acct.IdentityKey) != string(identityKey) {
			return fmt.Errorf("%w: identity key differs from the account's", relay.ErrBadRequest)
		}
		var active int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE account = ? AND revoked = 0`, id).Scan(&active); err != nil {
			return fmt.Errorf("sqlitestore: link: %w", err)
		}
		if active >= maxDevices {
			return relay.ErrTooManyDevices
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET next_device = next_device + 1 WHERE id = ?`, id); err != nil {
			return fmt.Errorf("sqlitestore: link: %w", err)
		}
		d.Addr = relay.DeviceAddr{Account: acct.ID, Device: uint32(next)}
		d.Created, d.LastSeen = now, now
		if err := insertDevice(ctx, tx, d); err != nil {
			return err
		}
		return storePreKeys(ctx, tx, d.Addr, keys)
	})
	return acct, d, err
}

const accountCols = `SELECT id, username, identity_key, created_ms, expires_ms, revoked, next_device FROM accounts`

func scanAccount(row interface{ Scan(...any) error }) (relay.Account, int64, error) {
	var (
		a                relay.Account
		id               []byte
		created, expires int64
		next             int64
	)
	err := row.Scan(&id, &a.Username, &a.IdentityKey, &created, &expires, &a.Revoked, &next)
	if errors.Is(err, sql.ErrNoRows) {
		return a, 0, relay.ErrNotFound
	}
	if err != nil {
		return a, 0, fmt.Errorf("sqlitestore: account: %w", err)
	}
	copy(a.ID[:], id)
	a.Created, a.Expires = fromMS(created), fromMS(expires)
	return a, next, nil
}

// AccountByName implements relay.Directory.
func (s *Store) AccountByName(ctx context.Context, username string) (relay.Account, error) {
	a, _, err := scanAccount(s.queryRow(ctx, accountCols+` WHERE username = ?`, username))
	return a, err
}

// AccountByID implements relay.Directory.
func (s *Store) AccountByID(ctx context.Context, id relay.AccountID) (relay.Account, error) {
	a, _, err := scanAccount(s.queryRow(ctx, accountCols+` WHERE id = ?`, id[:]))
	return a, err
}

// Accounts implements relay.Directory.
func (s *Store) Accounts(ctx context.Context) ([]relay.Account, error) {
	rows, err := s.query(ctx, accountCols+` ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: accounts: %w", err)
	}
	defer rows.Close()
	var out []relay.Account
	for rows.Next() {
		a, _, err := scanAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rowsErr(rows)
}

const deviceCols = `SELECT account, device, device_key, registration_id, name, created_ms, last_seen_ms, revoked FROM devices`

func scanDevice(row interface{ Scan(...any) error }) (relay.Device, error) {
	var (
		d             relay.Device
		acct          []byte
		created, seen int64
	)
	err := row.Scan(&acct, &d.Addr.Device, &d.DeviceKey, &d.RegistrationID, &d.Name, &created, &seen, &d.Revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return d, relay.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("sqlitestore: device: %w", err)
	}
	copy(d.Addr.Account[:], acct)
	d.Created, d.LastSeen = fromMS(created), fromMS(seen)
	return d, nil
}

// Devices implements relay.Directory.
func (s *Store) Devices(ctx context.Context, acct relay.AccountID, includeRevoked bool) ([]relay.Device, error) {
	q := deviceCols + ` WHERE account = ? AND revoked = 0 ORDER BY device`
	if includeRevoked {
		q = deviceCols + ` WHERE account = ? ORDER BY device`
	}
	rows, err := s.query(ctx, q, acct[:])
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: devices: %w", err)
	}
	defer rows.Close()
	var out []relay.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rowsErr(rows)
}

// Device implements relay.Directory.
func (s *Store) Device(ctx context.Context, addr relay.DeviceAddr) (relay.Device, error) {
	return scanDevice(s.queryRow(ctx, deviceCols+` WHERE account = ? AND device = ?`, addr.Account[:], addr.Device))
}

// TouchDevice implements relay.Directory.
func (s *Store) TouchDevice(ctx context.Context, addr relay.DeviceAddr, t time.Time) error {
	if _, err := s.w.ExecContext(ctx, `UPDATE devices SET last_seen_ms = ? WHERE account = ? AND device = ?`, ms(t), addr.Account[:], addr.Device); err != nil {
		return fmt.Errorf("sqlitestore: touch device: %w", err)
	}
	return nil
}

// Revoke implements relay.Directory.
func (s *Store) Revoke(ctx context.Context, addr relay.DeviceAddr, now time.Time) error {
	return s.mailboxTx(ctx, func(tx *sql.Tx) (func(), error) {
		var res sql.Result
		var err error
		if addr.Device == 0 {
			res, err = tx.ExecContext(ctx, `UPDATE accounts SET revoked = 1 WHERE id = ?`, addr.Account[:])
			if err == nil {
				_, err = tx.ExecContext(ctx, `UPDATE devices SET revoked = 1 WHERE account = ?`, addr.Account[:])
			}
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE devices SET revoked = 1 WHERE account = ? AND device = ?`, addr.Account[:], addr.Device)
		}
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: revoke: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, relay.ErrNotFound
		}
		for _, q := range []string{
			`DELETE FROM one_time_prekeys WHERE account = ? AND (? = 0 OR device = ?)`,
			`DELETE FROM signed_prekeys WHERE account = ? AND (? = 0 OR device = ?)`,
		} {
			if _, err := tx.ExecContext(ctx, q, addr.Account[:], addr.Device, addr.Device); err != nil {
				return nil, fmt.Errorf("sqlitestore: revoke: %w", err)
			}
		}
		after, err := s.deleteQueued(ctx, tx, addr.Account, addr.Device)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore: revoke: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO revocations (account, device) VALUES (?, ?)`, addr.Account[:], addr.Device); err != nil {
			return nil, fmt.Errorf("sqlitestore: revoke: %w", err)
		}
		return after, nil
	})
}

// RevocationsSince implements relay.Directory.
func (s *Store) RevocationsSince(ctx context.Context, seq int64) ([]relay.Revocation, error) {
	rows, err := s.query(ctx, `SELECT seq, account, device FROM revocations WHERE seq > ? ORDER BY seq`, seq)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: revocations: %w", err)
	}
	defer rows.Close()
	var out []relay.Revocation
	for rows.Next() {
		var (
			r    relay.Revocation
			acct []byte
		)
		if err := rows.Scan(&r.Seq, &acct, &r.Addr.Device); err != nil {
			return nil, fmt.Errorf("sqlitestore: revocations: %w", err)
		}
		copy(r.Addr.Account[:], acct)
		out = append(out, r)
	}
	return out, rowsErr(rows)
}

// qQueued counts the envelopes not yet acknowledged, and qQueuedBytes
// sums their ciphertext: in backlog (listed in mailbox) and in the
// segments (less their acks).
var (
	qQueued = `(SELECT count(*) FROM backlog_box) + ` +
		unionSegs(`(SELECT count(*) FROM {T} WHERE seq NOT IN (SELECT seq FROM {A}))`, " + ")
	qQueuedBytes = `(SELECT coalesce(sum(length(e.content)), 0) FROM backlog_box m JOIN backlog e ON e.seq = m.seq) + ` +
		unionSegs(`(SELECT coalesce(sum(length(content)), 0) FROM {T} WHERE seq NOT IN (SELECT seq FROM {A}))`, " + ")
)

// Usage implements relay.Directory.
func (s *Store) Usage(ctx context.Context) (relay.Usage, error) {
	var u relay.Usage
	now := ms(time.Now())
	err := s.queryRow(ctx, `SELECT
		(SELECT count(*) FROM accounts),
		(SELECT count(*) FROM accounts WHERE revoked = 0 AND expires_ms > ?),
		(SELECT count(*) FROM devices),
		(SELECT count(*) FROM devices WHERE revoked = 0),
		(SELECT count(*) FROM codes),
		(SELECT coalesce(sum(seats), 0) FROM codes),
		(SELECT coalesce(sum(used), 0) FROM codes),
		(`+qQueued+`),
		(`+qQueuedBytes+`)`, now).
		Scan(&u.Accounts, &u.ActiveAccounts, &u.Devices, &u.ActiveDevices, &u.Codes, &u.SeatsTotal, &u.SeatsUsed, &u.QueuedEnvelopes, &u.QueuedBytes)
	if err != nil {
		return u, fmt.Errorf("sqlitestore: usage: %w", err)
	}
	return u, nil
}

func rowsErr(rows *sql.Rows) error {
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlitestore: %w", err)
	}
	return nil
}
