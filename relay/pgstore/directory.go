package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"sotto/relay"
)

// CreateCode implements relay.Directory.
func (s *Store) CreateCode(ctx context.Context, c relay.Code) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO codes (id, hash, seats, used, created_ms, expires_ms, revoked, note) VALUES ($1, $2, $3, 0, $4, $5, false, $6)`,
		c.ID, c.Hash[:], c.Seats, ms(c.Created), ms(c.Expires), c.Note)
	if err != nil {
		return fmt.Errorf("pgstore: create code: %w", err)
	}
	return nil
}

// Codes implements relay.Directory.
func (s *Store) Codes(ctx context.Context) ([]relay.Code, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, hash, seats, used, created_ms, expires_ms, revoked, note FROM codes ORDER BY created_ms, id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: codes: %w", err)
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
			return nil, fmt.Errorf("pgstore: codes: %w", err)
		}
		copy(c.Hash[:], hash)
		c.Created, c.Expires = fromMS(created), fromMS(expir)
		out = append(out, c)
	}
	return out, rowsErr(rows)
}

// RevokeCode implements relay.Directory.
func (s *Store) RevokeCode(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE codes SET revoked = true WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("pgstore: revoke code: %w", err)
	}
	if tag.RowsAffected() == 0 {
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
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			codeID      string
			seats, used int
			expires     int64
			revoked     bool
		)
		// FOR UPDATE: concurrent enrollments on one code take turns, so
		// the last seat goes to exactly one of them.
		err := tx.QueryRow(ctx, `SELECT id, seats, used, expires_ms, revoked FROM codes WHERE hash = $1 FOR UPDATE`, a.CodeHash[:]).
			Scan(&codeID, &seats, &used, &expires, &revoked)
		if errors.Is(err, pgx.ErrNoRows) {
			return relay.ErrBadCode
		}
		if err != nil {
			return fmt.Errorf("pgstore: enroll: %w", err)
		}
		if revoked || used >= seats || !now.Before(fromMS(expires)) {
			return relay.ErrBadCode
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE username = $1)`, a.Username).Scan(&taken); err != nil {
			return fmt.Errorf("pgstore: enroll: %w", err)
		}
		if taken {
			return relay.ErrConflict
		}
		if _, err := tx.Exec(ctx, `UPDATE codes SET used = used + 1 WHERE id = $1`, codeID); err != nil {
			return fmt.Errorf("pgstore: enroll: %w", err)
		}
		acct = relay.Account{ID: a.ID, Username: a.Username, IdentityKey: a.IdentityKey, Created: now, Expires: fromMS(expires)}
		if _, err := tx.Exec(ctx, `INSERT INTO accounts (id, username, identity_key, created_ms, expires_ms, next_device) VALUES ($1, $2, $3, $4, $5, 2)`,
			a.ID[:], a.Username, nonNil(a.IdentityKey), ms(now), expires); err != nil {
			if isUniqueViolation(err) { // the same name enrolled concurrently
				return relay.ErrConflict
			}
			return fmt.Errorf("pgstore: enroll: %w", err)
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

func insertDevice(ctx context.Context, tx pgx.Tx, d relay.Device) error {
	_, err := tx.Exec(ctx, `INSERT INTO devices (account, device, device_key, registration_id, name, created_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		d.Addr.Account[:], int64(d.Addr.Device), nonNil(d.DeviceKey), int64(d.RegistrationID), d.Name, ms(d.Created), ms(d.LastSeen))
	if err != nil {
		return fmt.Errorf("pgstore: insert device: %w", err)
	}
	return nil
}

// CreateLinkToken implements relay.Directory.
func (s *Store) CreateLinkToken(ctx context.Context, acct relay.AccountID, hash [32]byte, expires time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM link_tokens WHERE expires_ms < $1`, ms(time.Now())); err != nil {
			return fmt.Errorf("pgstore: link token: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO link_tokens (hash, account, expires_ms) VALUES ($1, $2, $3)`, hash[:], acct[:], ms(expires)); err != nil {
			return fmt.Errorf("pgstore: link token: %w", err)
		}
		return nil
	})
}

// LinkDevice implements relay.Directory.
func (s *Store) LinkDevice(ctx context.Context, tokenHash [32]byte, identityKey []byte, d relay.Device, keys relay.PreKeys, maxDevices int, now time.Time) (relay.Account, relay.Device, error) {
	var acct relay.Account
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			id      []byte
			expires int64
		)
		err := tx.QueryRow(ctx, `DELETE FROM link_tokens WHERE hash = $1 RETURNING account, expires_ms`, tokenHash[:]).Scan(&id, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return relay.ErrBadToken
		}
		if err != nil {
			return fmt.Errorf("pgstore: link: %w", err)
		}
		if !now.Before(fromMS(expires)) {
			return relay.ErrBadToken
		}
		// FOR UPDATE: links to one account take turns (device count, next id).
		var next int64
		acct, next, err = scanAccount(tx.QueryRow(ctx, accountCols+` WHERE id = $1 FOR UPDATE`, id))
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
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM devices WHERE account = $1 AND NOT revoked`, id).Scan(&active); err != nil {
			return fmt.Errorf("pgstore: link: %w", err)
		}
		if active >= maxDevices {
			return relay.ErrTooManyDevices
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET next_device = next_device + 1 WHERE id = $1`, id); err != nil {
			return fmt.Errorf("pgstore: link: %w", err)
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

func scanAccount(row pgx.Row) (relay.Account, int64, error) {
	var (
		a                relay.Account
		id               []byte
		created, expires int64
		next             int64
	)
	err := row.Scan(&id, &a.Username, &a.IdentityKey, &created, &expires, &a.Revoked, &next)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, 0, relay.ErrNotFound
	}
	if err != nil {
		return a, 0, fmt.Errorf("pgstore: account: %w", err)
	}
	copy(a.ID[:], id)
	a.Created, a.Expires = fromMS(created), fromMS(expires)
	return a, next, nil
}

// AccountByName implements relay.Directory.
func (s *Store) AccountByName(ctx context.Context, username string) (relay.Account, error) {
	a, _, err := scanAccount(s.pool.QueryRow(ctx, accountCols+` WHERE username = $1`, username))
	return a, err
}

// AccountByID implements relay.Directory.
func (s *Store) AccountByID(ctx context.Context, id relay.AccountID) (relay.Account, error) {
	a, _, err := scanAccount(s.pool.QueryRow(ctx, accountCols+` WHERE id = $1`, id[:]))
	return a, err
}

// Accounts implements relay.Directory.
func (s *Store) Accounts(ctx context.Context) ([]relay.Account, error) {
	// Byte order, like SQLite, whatever the database's collation.
	rows, err := s.pool.Query(ctx, accountCols+` ORDER BY username COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("pgstore: accounts: %w", err)
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

func scanDevice(row pgx.Row) (relay.Device, error) {
	var (
		d                       relay.Device
		acct                    []byte
		dev, reg, created, seen int64
	)
	err := row.Scan(&acct, &dev, &d.DeviceKey, &reg, &d.Name, &created, &seen, &d.Revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, relay.ErrNotFound
	}
	if err != nil {
		return d, fmt.Errorf("pgstore: device: %w", err)
	}
	copy(d.Addr.Account[:], acct)
	d.Addr.Device, d.RegistrationID = uint32(dev), uint32(reg)
	d.Created, d.LastSeen = fromMS(created), fromMS(seen)
	return d, nil
}

// Devices implements relay.Directory.
func (s *Store) Devices(ctx context.Context, acct relay.AccountID, includeRevoked bool) ([]relay.Device, error) {
	rows, err := s.pool.Query(ctx, deviceCols+` WHERE account = $1 AND ($2 OR NOT revoked) ORDER BY device`, acct[:], includeRevoked)
	if err != nil {
		return nil, fmt.Errorf("pgstore: devices: %w", err)
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
	return scanDevice(s.pool.QueryRow(ctx, deviceCols+` WHERE account = $1 AND device = $2`, addr.Account[:], int64(addr.Device)))
}

// TouchDevice implements relay.Directory.
func (s *Store) TouchDevice(ctx context.Context, addr relay.DeviceAddr, t time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE devices SET last_seen_ms = $1 WHERE account = $2 AND device = $3`, ms(t), addr.Account[:], int64(addr.Device)); err != nil {
		return fmt.Errorf("pgstore: touch device: %w", err)
	}
	return nil
}

// Revoke implements relay.Directory.
func (s *Store) Revoke(ctx context.Context, addr relay.DeviceAddr, now time.Time) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// Revocations are numbered in commit order, like envelopes, so a
		// poller's cursor never skips one.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(lockRevocation)); err != nil {
			return fmt.Errorf("pgstore: revoke: %w", err)
		}
		acct, dev := addr.Account[:], int64(addr.Device)
		var n int64
		if addr.Device == 0 {
			tag, err := tx.Exec(ctx, `UPDATE accounts SET revoked = true WHERE id = $1`, acct)
			if err != nil {
				return fmt.Errorf("pgstore: revoke: %w", err)
			}
			n = tag.RowsAffected()
			if _, err := tx.Exec(ctx, `UPDATE devices SET revoked = true WHERE account = $1`, acct); err != nil {
				return fmt.Errorf("pgstore: revoke: %w", err)
			}
		} else {
			tag, err := tx.Exec(ctx, `UPDATE devices SET revoked = true WHERE account = $1 AND device = $2`, acct, dev)
			if err != nil {
				return fmt.Errorf("pgstore: revoke: %w", err)
			}
			n = tag.RowsAffected()
		}
		if n == 0 {
			return relay.ErrNotFound
		}
		for _, q := range []string{
			`DELETE FROM one_time_prekeys WHERE account = $1 AND ($2 = 0 OR device = $2)`,
			`DELETE FROM signed_prekeys WHERE account = $1 AND ($2 = 0 OR device = $2)`,
			`DELETE FROM envelopes WHERE account = $1 AND ($2 = 0 OR device = $2)`,
		} {
			if _, err := tx.Exec(ctx, q, acct, dev); err != nil {
				return fmt.Errorf("pgstore: revoke: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO revocations (account, device) VALUES ($1, $2)`, acct, dev); err != nil {
			return fmt.Errorf("pgstore: revoke: %w", err)
		}
		return nil
	})
}

// RevocationsSince implements relay.Directory.
func (s *Store) RevocationsSince(ctx context.Context, seq int64) ([]relay.Revocation, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, account, device FROM revocations WHERE seq > $1 ORDER BY seq`, seq)
	if err != nil {
		return nil, fmt.Errorf("pgstore: revocations: %w", err)
	}
	defer rows.Close()
	var out []relay.Revocation
	for rows.Next() {
		var (
			r    relay.Revocation
			acct []byte
			dev  int64
		)
		if err := rows.Scan(&r.Seq, &acct, &dev); err != nil {
			return nil, fmt.Errorf("pgstore: revocations: %w", err)
		}
		copy(r.Addr.Account[:], acct)
		r.Addr.Device = uint32(dev)
		out = append(out, r)
	}
	return out, rowsErr(rows)
}

// Usage implements relay.Directory.
func (s *Store) Usage(ctx context.Context) (relay.Usage, error) {
	var u relay.Usage
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM accounts),
		(SELECT count(*) FROM accounts WHERE NOT revoked AND expires_ms > $1),
		(SELECT count(*) FROM devices),
		(SELECT count(*) FROM devices WHERE NOT revoked),
		(SELECT count(*) FROM codes),
		(SELECT coalesce(sum(seats), 0) FROM codes),
		(SELECT coalesce(sum(used), 0) FROM codes),
		(SELECT count(*) FROM envelopes),
		(SELECT coalesce(sum(length(content)), 0) FROM envelopes)`, ms(time.Now())).
		Scan(&u.Accounts, &u.ActiveAccounts, &u.Devices, &u.ActiveDevices, &u.Codes, &u.SeatsTotal, &u.SeatsUsed, &u.QueuedEnvelopes, &u.QueuedBytes)
	if err != nil {
		return u, fmt.Errorf("pgstore: usage: %w", err)
	}
	return u, nil
}

// SetAccountExpiry sets the end of an account's subscription (extend,
// suspend), like sqlitestore's.
func (s *Store) SetAccountExpiry(ctx context.Context, id relay.AccountID, expires time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE accounts SET expires_ms = $1 WHERE id = $2`, ms(expires), id[:])
	if err != nil {
		return fmt.Errorf("pgstore: set expiry: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return relay.ErrNotFound
	}
	return nil
}

func rowsErr(rows pgx.Rows) error {
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	return nil
}
