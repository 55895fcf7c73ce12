package client

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"sotto/client/account"
	"sotto/client/store"
	"sotto/signal/session"
)

// kv is what the client needs of the local store; both *store.Store and
// *store.Tx provide it.
type kv interface {
	Get(ctx context.Context, table string, key []byte) ([]byte, error)
	Put(ctx context.Context, table string, key, value []byte) error
	Delete(ctx context.Context, table string, key []byte) error
	List(ctx context.Context, table string) ([]store.Entry, error)
	AppendMessage(ctx context.Context, conv string, id, value []byte) (bool, error)
	UpdateMessage(ctx context.Context, conv string, id, value []byte) error
	Message(ctx context.Context, conv string, id []byte) ([]byte, error)
	Messages(ctx context.Context, conv string, limit int) ([][]byte, error)
}

// Tables of the local store.
const (
	tblAccount    = account.Table
	tblIdentities = "identities"
	tblSessions   = "sessions"
	tblPreKeys    = "prekeys"
	tblSigned     = "signed-prekeys"
	tblKyber      = "kyber-prekeys"
)

// identityRecord is what the client knows of a contact's identity key.
type identityRecord struct {
	Key      []byte `json:"key"`
	Verified bool   `json:"verified,omitempty"` // the user compared safety numbers
	// Changed is set when the key changed since the user last accepted it;
	// nothing is sent to the contact until `verify --accept`.
	Changed  bool   `json:"changed,omitempty"`
	Previous []byte `json:"previous,omitempty"`
}

func loadIdentity(ctx context.Context, db kv, user string) (*identityRecord, error) {
	b, err := db.Get(ctx, tblIdentities, []byte(user))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r identityRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("client: identity record: %w", err)
	}
	return &r, nil
}

func saveIdentity(ctx context.Context, db kv, user string, r *identityRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("client: identity record: %w", err)
	}
	return db.Put(ctx, tblIdentities, []byte(user), b)
}

func sameKey(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// sigStore implements the session package's store interfaces over the local
// store (or one transaction of it). Identities are per account: every device
// of a user shares its identity key.
type sigStore struct {
	db       kv
	self     string
	identity *session.IdentityKeyPair
	regID    uint32
	// changed collects users whose identity changed, reported after commit.
	changed []string
	// first, on the receive path, checks a user's first identity key
	// against the key transparency log before it is saved
	// (transparency_first.go).
	first *firstContact
}

func (a *Client) sigStores(db kv) *sigStore {
	return &sigStore{db: db, self: a.acct.Username, identity: a.identity, regID: a.acct.RegistrationID}
}

func (s *sigStore) stores() session.Stores {
	return session.Stores{Identity: s, PreKeys: s, SignedPreKeys: s, KyberPreKeys: s, Sessions: s}
}

func (s *sigStore) IdentityKeyPair(context.Context) (*session.IdentityKeyPair, error) {
	return s.identity, nil
}

func (s *sigStore) LocalRegistrationID(context.Context) (uint32, error) { return s.regID, nil }

func (s *sigStore) SaveIdentity(ctx context.Context, addr session.Address, key []byte) (bool, error) {
	if addr.Name == s.self {
		if !sameKey(key, s.identity.PublicKey().Serialize()) {
			return false, fmt.Errorf("client: own device %s has a foreign identity: %w", addr, session.ErrUntrustedIdentity)
		}
		return false, nil
	}
	r, err := loadIdentity(ctx, s.db, addr.Name)
	if err != nil {
		return false, err
	}
	switch {
	case r == nil:
		if err := s.first.vet(ctx, s.db, addr.Name, key); err != nil {
			return false, err
		}
		r = &identityRecord{Key: key}
	case sameKey(r.Key, key):
		return false, nil
	default:
		r = &identityRecord{Key: key, Changed: true, Previous: r.Key}
		s.changed = append(s.changed, addr.Name)
	}
	return r.Changed, saveIdentity(ctx, s.db, addr.Name, r)
}

func (s *sigStore) IsTrustedIdentity(ctx context.Context, addr session.Address, key []byte, dir session.Direction) (bool, error) {
	if addr.Name == s.self {
		return sameKey(key, s.identity.PublicKey().Serialize()), nil
	}
	r, err := loadIdentity(ctx, s.db, addr.Name)
	if err != nil || r == nil {
		return err == nil, err
	}
	if dir == session.Receiving {
		// Incoming messages are accepted and the change is shown; what
		// is blocked is sending to a key the user has not accepted.
		return true, nil
	}
	return sameKey(r.Key, key) && !r.Changed, nil
}

func (s *sigStore) Identity(ctx context.Context, addr session.Address) ([]byte, error) {
	if addr.Name == s.self {
		return s.identity.PublicKey().Serialize(), nil
	}
	r, err := loadIdentity(ctx, s.db, addr.Name)
	if err != nil || r == nil {
		return nil, err
	}
	return r.Key, nil
}

func idKey(id uint32) []byte { return binary.BigEndian.AppendUint32(nil, id) }

func (s *sigStore) LoadPreKey(ctx context.Context, id uint32) (*session.PreKeyRecord, error) {
	b, err := s.db.Get(ctx, tblPreKeys, idKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("client: prekey %d: %w", id, session.ErrInvalidKeyID)
	}
	if err != nil {
		return nil, err
	}
	return session.ParsePreKeyRecord(b)
}

func (s *sigStore) StorePreKey(ctx context.Context, id uint32, r *session.PreKeyRecord) error {
	return s.db.Put(ctx, tblPreKeys, idKey(id), r.Serialize())
}

func (s *sigStore) RemovePreKey(ctx context.Context, id uint32) error {
	return s.db.Delete(ctx, tblPreKeys, idKey(id))
}

func (s *sigStore) LoadSignedPreKey(ctx context.Context, id uint32) (*session.SignedPreKeyRecord, error) {
	b, err := s.db.Get(ctx, tblSigned, idKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("client: signed prekey %d: %w", id, session.ErrInvalidKeyID)
	}
	if err != nil {
		return nil, err
	}
	return session.ParseSignedPreKeyRecord(b)
}

func (s *sigStore) StoreSignedPreKey(ctx context.Context, id uint32, r *session.SignedPreKeyRecord) error {
	return s.db.Put(ctx, tblSigned, idKey(id), r.Serialize())
}

// Kyber prekey values are one flag byte (1 = last resort) then the record.
func (s *sigStore) LoadKyberPreKey(ctx context.Context, id uint32) (*session.KyberPreKeyRecord, error) {
	b, err := s.db.Get(ctx, tblKyber, idKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("client: kyber prekey %d: %w", id, session.ErrInvalidKeyID)
	}
	if err != nil {
		return nil, err
	}
	if len(b) < 1 {
		return nil, fmt.Errorf("client: kyber prekey %d: %w", id, store.ErrCorrupt)
	}
	return session.ParseKyberPreKeyRecord(b[1:])
}

func (s *sigStore) StoreKyberPreKey(ctx context.Context, id uint32, r *session.KyberPreKeyRecord, lastResort bool) error {
	flag := byte(0)
	if lastResort {
		flag = 1
	}
	return s.db.Put(ctx, tblKyber, idKey(id), append([]byte{flag}, r.Serialize()...))
}

func (s *sigStore) MarkKyberPreKeyUsed(ctx context.Context, id uint32) error {
	b, err := s.db.Get(ctx, tblKyber, idKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(b) > 0 && b[0] == 1 {
		return nil
	}
	return s.db.Delete(ctx, tblKyber, idKey(id))
}

func sessionKey(addr session.Address) []byte {
	return []byte(addr.Name + "\x00" + strconv.FormatUint(uint64(addr.DeviceID), 10))
}

func (s *sigStore) LoadSession(ctx context.Context, addr session.Address) (*session.Record, error) {
	b, err := s.db.Get(ctx, tblSessions, sessionKey(addr))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return session.ParseRecord(b)
}

func (s *sigStore) StoreSession(ctx context.Context, addr session.Address, r *session.Record) error {
	return s.db.Put(ctx, tblSessions, sessionKey(addr), r.Serialize())
}

func (s *sigStore) deleteSession(ctx context.Context, addr session.Address) error {
	return s.db.Delete(ctx, tblSessions, sessionKey(addr))
}
