package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"sotto/relay"
)

const (
	kindEC    = 0
	kindKyber = 1
)

func storePreKeys(ctx context.Context, tx *sql.Tx, dev relay.DeviceAddr, keys relay.PreKeys) error {
	put := func(kind int, k *relay.SignedPreKey) error {
		if k == nil {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO signed_prekeys (account, device, kind, key_id, pub, sig) VALUES (?, ?, ?, ?, ?, ?)`,
			dev.Account[:], dev.Device, kind, k.ID, k.PublicKey, nonNil(k.Signature))
		return err
	}
	if err := put(kindEC, keys.SignedPreKey); err != nil {
		return fmt.Errorf("sqlitestore: store prekeys: %w", err)
	}
	if err := put(kindKyber, keys.LastResortKyber); err != nil {
		return fmt.Errorf("sqlitestore: store prekeys: %w", err)
	}
	if len(keys.OneTime)+len(keys.OneTimeKyber) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO one_time_prekeys (account, device, kind, key_id, pub, sig) VALUES (?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("sqlitestore: store prekeys: %w", err)
	}
	defer st.Close()
	for kind, list := range [][]relay.SignedPreKey{kindEC: keys.OneTime, kindKyber: keys.OneTimeKyber} {
		for _, k := range list {
			if _, err := st.ExecContext(ctx, dev.Account[:], dev.Device, kind, k.ID, k.PublicKey, nonNil(k.Signature)); err != nil {
				return fmt.Errorf("sqlitestore: store prekeys: %w", err)
			}
		}
	}
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// StorePreKeys implements relay.Directory.
func (s *Store) StorePreKeys(ctx context.Context, dev relay.DeviceAddr, keys relay.PreKeys) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return storePreKeys(ctx, tx, dev, keys) })
}

// CountPreKeys implements relay.Directory.
func (s *Store) CountPreKeys(ctx context.Context, dev relay.DeviceAddr) (relay.PreKeyCount, error) {
	var c relay.PreKeyCount
	err := s.queryRow(ctx, `SELECT
		(SELECT count(*) FROM one_time_prekeys WHERE account = ?1 AND device = ?2 AND kind = 0),
		(SELECT count(*) FROM one_time_prekeys WHERE account = ?1 AND device = ?2 AND kind = 1),
		(SELECT count(*) FROM signed_prekeys WHERE account = ?1 AND device = ?2 AND kind = 0),
		(SELECT count(*) FROM signed_prekeys WHERE account = ?1 AND device = ?2 AND kind = 1)`,
		dev.Account[:], dev.Device).Scan(&c.OneTime, &c.OneTimeKyber, &c.HasSignedPreKey, &c.HasLastResort)
	if err != nil {
		return c, fmt.Errorf("sqlitestore: count prekeys: %w", err)
	}
	return c, nil
}

// TakeBundle implements relay.Directory.
func (s *Store) TakeBundle(ctx context.Context, dev relay.DeviceAddr) (relay.Bundle, error) {
	var b relay.Bundle
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		d, err := scanDevice(tx.QueryRowContext(ctx, deviceCols+` WHERE account = ? AND device = ? AND revoked = 0`, dev.Account[:], dev.Device))
		if err != nil {
			return err
		}
		b = relay.Bundle{Device: d}
		signed := func(kind int) (*relay.SignedPreKey, error) {
			var k relay.SignedPreKey
			err := tx.QueryRowContext(ctx, `SELECT key_id, pub, sig FROM signed_prekeys WHERE account = ? AND device = ? AND kind = ?`,
				dev.Account[:], dev.Device, kind).Scan(&k.ID, &k.PublicKey, &k.Signature)
			if errors.Is(err, sql.ErrNoRows) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("sqlitestore: take bundle: %w", err)
			}
			return &k, nil
		}
		take := func(kind int) (*relay.SignedPreKey, error) {
			var k relay.SignedPreKey
			err := tx.QueryRowContext(ctx, `DELETE FROM one_time_prekeys WHERE account = ?1 AND device = ?2 AND kind = ?3 AND key_id = (
				SELECT min(key_id) FROM one_time_prekeys WHERE account = ?1 AND device = ?2 AND kind = ?3)
				RETURNING key_id, pub, sig`, dev.Account[:], dev.Device, kind).Scan(&k.ID, &k.PublicKey, &k.Signature)
			if errors.Is(err, sql.ErrNoRows) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("sqlitestore: take bundle: %w", err)
			}
			return &k, nil
		}
		if b.SignedPreKey, err = signed(kindEC); err != nil {
			return err
		}
		last, err := signed(kindKyber)
		if err != nil {
			return err
		}
		if b.SignedPreKey == nil || last == nil {
			return relay.ErrPreKeys
		}
		if b.OneTime, err = take(kindEC); err != nil {
			return err
		}
		if b.Kyber, err = take(kindKyber); err != nil {
			return err
		}
		if b.Kyber == nil {
			b.Kyber, b.KyberLastResort = last, true
		}
		if b.OneTime != nil {
			b.OneTime.Signature = nil
		}
		return nil
	})
	return b, err
}
