package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"sotto/relay"
	"sotto/wire"
)

const (
	kindEC    = 0
	kindKyber = 1
)

func storePreKeys(ctx context.Context, tx pgx.Tx, dev relay.DeviceAddr, keys relay.PreKeys) error {
	var b pgx.Batch
	acct, d := dev.Account[:], int64(dev.Device)
	for kind, k := range []*relay.SignedPreKey{kindEC: keys.SignedPreKey, kindKyber: keys.LastResortKyber} {
		if k != nil {
			b.Queue(`INSERT INTO signed_prekeys (account, device, kind, key_id, pub, sig) VALUES ($1, $2, $3, $4, $5, $6)
				ON CONFLICT (account, device, kind) DO UPDATE SET key_id = excluded.key_id, pub = excluded.pub, sig = excluded.sig`,
				acct, d, int16(kind), int64(k.ID), nonNil(k.PublicKey), nonNil(k.Signature))
		}
	}
	for kind, list := range [][]relay.SignedPreKey{kindEC: keys.OneTime, kindKyber: keys.OneTimeKyber} {
		if len(list) == 0 {
			continue
		}
		ids, pubs, sigs := make([]int64, len(list)), make([][]byte, len(list)), make([][]byte, len(list))
		for i, k := range list {
			ids[i], pubs[i], sigs[i] = int64(k.ID), nonNil(k.PublicKey), nonNil(k.Signature)
		}
		b.Queue(`INSERT INTO one_time_prekeys (account, device, kind, key_id, pub, sig)
			SELECT $1, $2, $3, u.id, u.pub, u.sig FROM unnest($4::bigint[], $5::bytea[], $6::bytea[]) AS u(id, pub, sig)
			ON CONFLICT (account, device, kind, key_id) DO UPDATE SET pub = excluded.pub, sig = excluded.sig`,
			acct, d, int16(kind), ids, pubs, sigs)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("pgstore: store prekeys: %w", err)
	}
	return nil
}

// StorePreKeys implements relay.Directory.
func (s *Store) StorePreKeys(ctx context.Context, dev relay.DeviceAddr, keys relay.PreKeys) error {
	return s.inTx(ctx, func(tx pgx.Tx) error { return storePreKeys(ctx, tx, dev, keys) })
}

// CountPreKeys implements relay.Directory.
func (s *Store) CountPreKeys(ctx context.Context, dev relay.DeviceAddr) (relay.PreKeyCount, error) {
	var c relay.PreKeyCount
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM one_time_prekeys WHERE account = $1 AND device = $2 AND kind = 0),
		(SELECT count(*) FROM one_time_prekeys WHERE account = $1 AND device = $2 AND kind = 1),
		EXISTS (SELECT 1 FROM signed_prekeys WHERE account = $1 AND device = $2 AND kind = 0),
		EXISTS (SELECT 1 FROM signed_prekeys WHERE account = $1 AND device = $2 AND kind = 1)`,
		dev.Account[:], int64(dev.Device)).Scan(&c.OneTime, &c.OneTimeKyber, &c.HasSignedPreKey, &c.HasLastResort)
	if err != nil {
		return c, fmt.Errorf("pgstore: count prekeys: %w", err)
	}
	return c, nil
}

// TakeBundle implements relay.Directory. Takers of one device's keys
// take turns on the device row's lock, then remove the lowest key with
// DELETE ... RETURNING: each key goes to exactly one of them and none is
// skipped (SKIP LOCKED would hand a concurrent taker the last-resort key
// while one-time keys remain).
func (s *Store) TakeBundle(ctx context.Context, dev relay.DeviceAddr) (relay.Bundle, error) {
	var b relay.Bundle
	acct, d := dev.Account[:], int64(dev.Device)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		dv, err := scanDevice(tx.QueryRow(ctx, deviceCols+` WHERE account = $1 AND device = $2 AND NOT revoked FOR NO KEY UPDATE`, acct, d))
		if err != nil {
			return err
		}
		b = relay.Bundle{Device: dv}
		signed := func(kind int16) (*relay.SignedPreKey, error) {
			var (
				k  relay.SignedPreKey
				id int64
			)
			err := tx.QueryRow(ctx, `SELECT key_id, pub, sig FROM signed_prekeys WHERE account = $1 AND device = $2 AND kind = $3`,
				acct, d, kind).Scan(&id, &k.PublicKey, &k.Signature)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("pgstore: take bundle: %w", err)
			}
			k.ID = uint32(id)
			return &k, nil
		}
		take := func(kind int16) (*relay.SignedPreKey, error) {
			var (
				k  relay.SignedPreKey
				id int64
			)
			err := tx.QueryRow(ctx, `DELETE FROM one_time_prekeys WHERE account = $1 AND device = $2 AND kind = $3 AND key_id = (
				SELECT min(key_id) FROM one_time_prekeys WHERE account = $1 AND device = $2 AND kind = $3)
				RETURNING key_id, pub, sig`, acct, d, kind).Scan(&id, &k.PublicKey, &k.Signature)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("pgstore: take bundle: %w", err)
			}
			k.ID = uint32(id)
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

// OrgKey implements relay.OrgKeyStore.
func (s *Store) OrgKey(ctx context.Context) ([]byte, error) {
	var k []byte
	err := s.pool.QueryRow(ctx, `SELECT key FROM org_key WHERE id = 1`).Scan(&k)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, relay.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: org key: %w", err)
	}
	return k, nil
}

// SetOrgKey implements relay.OrgKeyStore.
func (s *Store) SetOrgKey(ctx context.Context, key []byte) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO org_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET key = excluded.key`, nonNil(key)); err != nil {
		return fmt.Errorf("pgstore: set org key: %w", err)
	}
	return nil
}

// PutOrgDocument implements relay.OrgDocumentStore.
func (s *Store) PutOrgDocument(ctx context.Context, kind wire.OrgDocumentKind, subject string, doc []byte) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO org_documents (kind, subject, doc) VALUES ($1, $2, $3)
		ON CONFLICT (kind, subject) DO UPDATE SET doc = excluded.doc`, int32(kind), subject, nonNil(doc)); err != nil {
		return fmt.Errorf("pgstore: put org document: %w", err)
	}
	return nil
}

// OrgDocument implements relay.OrgDocumentStore.
func (s *Store) OrgDocument(ctx context.Context, kind wire.OrgDocumentKind, subject string) ([]byte, error) {
	var b []byte
	err := s.pool.QueryRow(ctx, `SELECT doc FROM org_documents WHERE kind = $1 AND subject = $2`, int32(kind), subject).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, relay.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: org document: %w", err)
	}
	return b, nil
}

// bindOrg stores, inside an enrollment's transaction, the account's
// identity certificate and, for the bootstrap enrollment, the org key.
func bindOrg(ctx context.Context, tx pgx.Tx, a relay.NewAccount) error {
	if a.OrgKey != nil {
		tag, err := tx.Exec(ctx, `INSERT INTO org_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING`, a.OrgKey)
		if err != nil {
			return fmt.Errorf("pgstore: set org key: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: an organization key is registered already", relay.ErrConflict)
		}
	}
	if a.Certificate == nil {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO org_documents (kind, subject, doc) VALUES ($1, $2, $3)
		ON CONFLICT (kind, subject) DO UPDATE SET doc = excluded.doc`, int32(wire.OrgDocumentKind_RELAY_IDENTITY_CERTIFICATE), a.Username, a.Certificate); err != nil {
		return fmt.Errorf("pgstore: identity certificate: %w", err)
	}
	return nil
}

// OrgDocumentsWithPrefix implements relay.OrgDocumentLister.
func (s *Store) OrgDocumentsWithPrefix(ctx context.Context, kind wire.OrgDocumentKind, prefix string) ([][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc FROM org_documents WHERE kind = $1 AND left(subject, $2) = $3 ORDER BY subject`,
		int32(kind), len(prefix), prefix)
	if err != nil {
		return nil, fmt.Errorf("pgstore: org documents: %w", err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("pgstore: org documents: %w", err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}
