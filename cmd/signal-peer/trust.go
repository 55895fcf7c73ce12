package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"sync"

	"sotto/signal/session"
)

// trustStore is a session.IdentityStore with trust on first use per remote (name,
// device). A key that differs from the stored one is refused and kept as pending
// until accept takes it.
type trustStore struct {
	identity *session.IdentityKeyPair
	regID    uint32

	mu      sync.Mutex
	known   map[session.Address][]byte
	pending map[session.Address][]byte
}

func newTrustStore(identity *session.IdentityKeyPair, regID uint32) *trustStore {
	return &trustStore{
		identity: identity,
		regID:    regID,
		known:    make(map[session.Address][]byte),
		pending:  make(map[session.Address][]byte),
	}
}

func (s *trustStore) IdentityKeyPair(context.Context) (*session.IdentityKeyPair, error) {
	return s.identity, nil
}

func (s *trustStore) LocalRegistrationID(context.Context) (uint32, error) { return s.regID, nil }

func (s *trustStore) SaveIdentity(_ context.Context, addr session.Address, key []byte) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.known[addr]
	s.known[addr] = bytes.Clone(key)
	if p, ok := s.pending[addr]; ok && bytes.Equal(p, key) {
		delete(s.pending, addr)
	}
	return had && subtle.ConstantTimeCompare(old, key) != 1, nil
}

func (s *trustStore) IsTrustedIdentity(_ context.Context, addr session.Address, key []byte, _ session.Direction) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.known[addr]
	if !had || subtle.ConstantTimeCompare(old, key) == 1 {
		return true, nil
	}
	s.pending[addr] = bytes.Clone(key)
	return false, nil
}

func (s *trustStore) Identity(_ context.Context, addr session.Address) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.known[addr]; ok {
		return bytes.Clone(k), nil
	}
	return nil, nil
}

// accept trusts every pending key of the remote user name.
func (s *trustStore) accept(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for addr, k := range s.pending {
		if addr.Name == name {
			s.known[addr] = k
			delete(s.pending, addr)
		}
	}
}

// anyIdentity returns the stored key of user name: of device dev when dev is not 0,
// else of its lowest device; nil when none is known.
func (s *trustStore) anyIdentity(name string, dev uint32) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if dev != 0 {
		return bytes.Clone(s.known[session.Address{Name: name, DeviceID: dev}])
	}
	var best []byte
	var bestDev uint32
	for addr, k := range s.known {
		if addr.Name == name && (best == nil || addr.DeviceID < bestDev) {
			best, bestDev = k, addr.DeviceID
		}
	}
	return bytes.Clone(best)
}
