package session

import (
	"context"
	"crypto/subtle"
	"fmt"
	"sync"
)

// IdentityStore holds the local identity and the remote identities seen.
type IdentityStore interface {
	IdentityKeyPair(ctx context.Context) (*IdentityKeyPair, error)
	LocalRegistrationID(ctx context.Context) (uint32, error)
	// SaveIdentity records the remote's identity key; it reports whether
	// it replaced a different one.
	SaveIdentity(ctx context.Context, addr Address, identityKey []byte) (changed bool, err error)
	// IsTrustedIdentity is trust on first use: false if a different key
	// is stored for addr.
	IsTrustedIdentity(ctx context.Context, addr Address, identityKey []byte, dir Direction) (bool, error)
	// Identity returns the stored key for addr, or nil, nil when unknown.
	Identity(ctx context.Context, addr Address) ([]byte, error)
}

// PreKeyStore holds one-time EC prekeys. LoadPreKey returns an error
// wrapping ErrInvalidKeyID when id is unknown.
type PreKeyStore interface {
	LoadPreKey(ctx context.Context, id uint32) (*PreKeyRecord, error)
	StorePreKey(ctx context.Context, id uint32, r *PreKeyRecord) error
	RemovePreKey(ctx context.Context, id uint32) error
}

// SignedPreKeyStore holds signed EC prekeys.
type SignedPreKeyStore interface {
	LoadSignedPreKey(ctx context.Context, id uint32) (*SignedPreKeyRecord, error)
	StoreSignedPreKey(ctx context.Context, id uint32, r *SignedPreKeyRecord) error
}

// KyberPreKeyStore holds Kyber prekeys: one-time ones are removed when
// used, last-resort ones are kept.
type KyberPreKeyStore interface {
	LoadKyberPreKey(ctx context.Context, id uint32) (*KyberPreKeyRecord, error)
	StoreKyberPreKey(ctx context.Context, id uint32, r *KyberPreKeyRecord, lastResort bool) error
	MarkKyberPreKeyUsed(ctx context.Context, id uint32) error
}

// SessionStore holds session records. LoadSession returns nil, nil when
// there is none; the record it returns is the caller's to modify (return a
// copy or a freshly parsed record). StoreSession may keep r: callers do not
// modify a record after storing it.
type SessionStore interface {
	LoadSession(ctx context.Context, addr Address) (*Record, error)
	StoreSession(ctx context.Context, addr Address, r *Record) error
}

// Stores bundles the stores the session operations use.
type Stores struct {
	Identity      IdentityStore
	PreKeys       PreKeyStore
	SignedPreKeys SignedPreKeyStore
	KyberPreKeys  KyberPreKeyStore
	Sessions      SessionStore
}

// MemoryStore implements every store interface in memory, for tests and
// tools. It is safe for concurrent use.
type MemoryStore struct {
	mu         sync.Mutex
	identity   *IdentityKeyPair
	regID      uint32
	identities map[Address][]byte
	preKeys    map[uint32]*PreKeyRecord
	signed     map[uint32]*SignedPreKeyRecord
	kyber      map[uint32]*KyberPreKeyRecord
	lastResort map[uint32]bool
	sessions   map[Address]*Record
}

// NewMemoryStore makes an empty store for a local identity.
func NewMemoryStore(identity *IdentityKeyPair, registrationID uint32) *MemoryStore {
	return &MemoryStore{
		identity:   identity,
		regID:      registrationID,
		identities: make(map[Address][]byte),
		preKeys:    make(map[uint32]*PreKeyRecord),
		signed:     make(map[uint32]*SignedPreKeyRecord),
		kyber:      make(map[uint32]*KyberPreKeyRecord),
		lastResort: make(map[uint32]bool),
		sessions:   make(map[Address]*Record),
	}
}

// Stores returns s as every store.
func (s *MemoryStore) Stores() Stores {
	return Stores{Identity: s, PreKeys: s, SignedPreKeys: s, KyberPreKeys: s, Sessions: s}
}

// IdentityKeyPair implements IdentityStore.
func (s *MemoryStore) IdentityKeyPair(context.Context) (*IdentityKeyPair, error) {
	return s.identity, nil
}

// LocalRegistrationID implements IdentityStore.
func (s *MemoryStore) LocalRegistrationID(context.Context) (uint32, error) { return s.regID, nil }

// SaveIdentity implements IdentityStore.
func (s *MemoryStore) SaveIdentity(_ context.Context, addr Address, key []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.identities[addr]
	s.identities[addr] = append([]byte(nil), key...)
	return ok && subtle.ConstantTimeCompare(old, key) != 1, nil
}

// IsTrustedIdentity implements IdentityStore: trust on first use.
func (s *MemoryStore) IsTrustedIdentity(_ context.Context, addr Address, key []byte, _ Direction) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.identities[addr]
	return !ok || subtle.ConstantTimeCompare(old, key) == 1, nil
}

// Identity implements IdentityStore.
func (s *MemoryStore) Identity(_ context.Context, addr Address) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.identities[addr]; ok {
		return append([]byte(nil), k...), nil
	}
	return nil, nil
}

// LoadPreKey implements PreKeyStore.
func (s *MemoryStore) LoadPreKey(_ context.Context, id uint32) (*PreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.preKeys[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("%w: prekey %d", ErrInvalidKeyID, id)
}

// StorePreKey implements PreKeyStore.
func (s *MemoryStore) StorePreKey(_ context.Context, id uint32, r *PreKeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.preKeys[id] = r
	return nil
}

// RemovePreKey implements PreKeyStore.
func (s *MemoryStore) RemovePreKey(_ context.Context, id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.preKeys, id)
	return nil
}

// LoadSignedPreKey implements SignedPreKeyStore.
func (s *MemoryStore) LoadSignedPreKey(_ context.Context, id uint32) (*SignedPreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.signed[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("%w: signed prekey %d", ErrInvalidKeyID, id)
}

// StoreSignedPreKey implements SignedPreKeyStore.
func (s *MemoryStore) StoreSignedPreKey(_ context.Context, id uint32, r *SignedPreKeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signed[id] = r
	return nil
}

// LoadKyberPreKey implements KyberPreKeyStore.
func (s *MemoryStore) LoadKyberPreKey(_ context.Context, id uint32) (*KyberPreKeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.kyber[id]; ok {
		return r, nil
	}
	return nil, fmt.Errorf("%w: kyber prekey %d", ErrInvalidKeyID, id)
}

// StoreKyberPreKey implements KyberPreKeyStore.
func (s *MemoryStore) StoreKyberPreKey(_ context.Context, id uint32, r *KyberPreKeyRecord, lastResort bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kyber[id] = r
	s.lastResort[id] = lastResort
	return nil
}

// MarkKyberPreKeyUsed implements KyberPreKeyStore: one-time keys are
// removed, last-resort keys kept.
func (s *MemoryStore) MarkKyberPreKeyUsed(_ context.Context, id uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.lastResort[id] {
		delete(s.kyber, id)
		delete(s.lastResort, id)
	}
	return nil
}

// LoadSession implements SessionStore; it returns a copy.
func (s *MemoryStore) LoadSession(_ context.Context, addr Address) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.sessions[addr]; ok {
		return r.Clone(), nil
	}
	return nil, nil
}

// StoreSession implements SessionStore; it keeps r itself.
func (s *MemoryStore) StoreSession(_ context.Context, addr Address, r *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[addr] = r
	return nil
}
