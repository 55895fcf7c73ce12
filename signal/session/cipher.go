package session

import (
	"context"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"sotto/signal/keys"
	"sotto/signal/spqr"
)

// Encrypt encrypts plaintext for remote and returns the message type
// (MessageTypeSignal or MessageTypePreKey) and the serialized message. The
// post-quantum ratchet draws its randomness from crypto/rand.
func Encrypt(ctx context.Context, s Stores, remote Address, plaintext []byte, now time.Time) (msgType int, ciphertext []byte, err error) {
	return EncryptRand(ctx, cryptorand.Reader, s, remote, plaintext, now)
}

// EncryptRand is Encrypt with the randomness for the post-quantum ratchet
// (ML-KEM key generation and encapsulation) drawn from rand.
func EncryptRand(ctx context.Context, rand io.Reader, s Stores, remote Address, plaintext []byte, now time.Time) (msgType int, ciphertext []byte, err error) {
	record, err := s.Sessions.LoadSession(ctx, remote)
	if err != nil {
		return 0, nil, fmt.Errorf("session: session store: %w", err)
	}
	if !record.HasCurrentState() {
		return 0, nil, fmt.Errorf("%w: %s", ErrNoSession, remote)
	}
	st := record.current
	sc := st.sender
	pqState, pqMsg, pqKey, err := spqr.Send(st.pqState, rand)
	if err != nil {
		return 0, nil, fmt.Errorf("session: post-quantum ratchet: %w", err)
	}
	seed, next := chainStep(&sc.key)
	mk, err := deriveMessageKeys(&seed, pqKey)
	clear(pqKey)
	if err != nil {
		return 0, nil, err
	}
	defer mk.wipe()
	body := cbcEncrypt(&mk.cipherKey, &mk.iv, plaintext)
	inner := encodeSignalMessage(&mk.macKey, sc.ratchetKey, sc.index, st.previousCounter, body, pqMsg, st.localIdentity, st.remoteIdentity)

	msgType, out := MessageTypeSignal, inner
	if p := st.pending; p != nil {
		if now.Unix() > int64(p.timestampSec)+maxUnackedAgeSec {
			return 0, nil, fmt.Errorf("%w: %w: %s", ErrNoSession, ErrStaleSession, remote)
		}
		pm := &preKeySignalMessage{
			version:        uint8(st.version),
			registrationID: st.localRegID,
			hasPreKeyID:    p.hasPreKeyID,
			preKeyID:       p.preKeyID,
			signedPreKeyID: p.signedPreKeyID,
			baseKey:        p.baseKey,
			identityKey:    st.localIdentity,
		}
		if k := st.pendingKyber; k != nil {
			pm.hasKyber, pm.kyberPreKeyID, pm.kyberCT = true, k.preKeyID, k.ciphertext
		}
		msgType, out = MessageTypePreKey, pm.encode(inner)
	}
	sc.key, sc.index = next, sc.index+1
	st.pqState = pqState

	remoteID := st.remoteIdentity.Serialize()
	trusted, err := s.Identity.IsTrustedIdentity(ctx, remote, remoteID, Sending)
	if err != nil {
		return 0, nil, fmt.Errorf("session: identity store: %w", err)
	}
	if !trusted {
		return 0, nil, fmt.Errorf("%w: %s", ErrUntrustedIdentity, remote)
	}
	if _, err := s.Identity.SaveIdentity(ctx, remote, remoteID); err != nil {
		return 0, nil, fmt.Errorf("session: identity store: %w", err)
	}
	if err := s.Sessions.StoreSession(ctx, remote, record); err != nil {
		return 0, nil, fmt.Errorf("session: session store: %w", err)
	}
	return msgType, out, nil
}

// Decrypt decrypts a message of the given type from remote. A failed
// decryption leaves every store unchanged.
func Decrypt(ctx context.Context, rand io.Reader, s Stores, remote Address, msgType int, ciphertext []byte) ([]byte, error) {
	switch msgType {
	case MessageTypeSignal:
		return decryptSignal(ctx, rand, s, remote, ciphertext)
	case MessageTypePreKey:
		return decryptPreKey(ctx, rand, s, remote, ciphertext)
	}
	return nil, fmt.Errorf("%w: message type %d", ErrInvalidMessage, msgType)
}

// PreKeyMessageIdentity returns the identity key a PreKey message names
// (the key a new session with its sender would be built on), without
// decrypting it: a receiver vets that key before it decrypts.
func PreKeyMessageIdentity(b []byte) ([]byte, error) {
	m, err := parsePreKeySignalMessage(b)
	if err != nil {
		return nil, err
	}
	return m.identityKey.Serialize(), nil
}

func decryptSignal(ctx context.Context, rand io.Reader, s Stores, remote Address, b []byte) ([]byte, error) {
	m, err := parseSignalMessage(b)
	if err != nil {
		return nil, err
	}
	record, err := s.Sessions.LoadSession(ctx, remote)
	if err != nil {
		return nil, fmt.Errorf("session: session store: %w", err)
	}
	if record == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSession, remote)
	}
	pt, err := decryptWithRecord(rand, record, m, false)
	if err != nil {
		return nil, err
	}
	remoteID := record.current.remoteIdentity.Serialize()
	trusted, err := s.Identity.IsTrustedIdentity(ctx, remote, remoteID, Receiving)
	if err != nil {
		return nil, fmt.Errorf("session: identity store: %w", err)
	}
	if !trusted {
		return nil, fmt.Errorf("%w: %s", ErrUntrustedIdentity, remote)
	}
	if _, err := s.Identity.SaveIdentity(ctx, remote, remoteID); err != nil {
		return nil, fmt.Errorf("session: identity store: %w", err)
	}
	if err := s.Sessions.StoreSession(ctx, remote, record); err != nil {
		return nil, fmt.Errorf("session: session store: %w", err)
	}
	return pt, nil
}

func decryptPreKey(ctx context.Context, rand io.Reader, s Stores, remote Address, b []byte) ([]byte, error) {
	m, err := parsePreKeySignalMessage(b)
	if err != nil {
		return nil, err
	}
	record, err := s.Sessions.LoadSession(ctx, remote)
	if err != nil {
		return nil, fmt.Errorf("session: session store: %w", err)
	}
	if record == nil {
		record = NewRecord()
	}
	used, err := processPreKey(ctx, s, remote, record, m)
	if err != nil {
		return nil, err
	}
	pt, err := decryptWithRecord(rand, record, m.message, true)
	if err != nil {
		return nil, err
	}
	if _, err := s.Identity.SaveIdentity(ctx, remote, m.identityKey.Serialize()); err != nil {
		return nil, fmt.Errorf("session: identity store: %w", err)
	}
	if used != nil {
		if err := s.KyberPreKeys.MarkKyberPreKeyUsed(ctx, used.kyberID); err != nil {
			return nil, fmt.Errorf("session: kyber prekey store: %w", err)
		}
		if used.hasOneTime {
			if err := s.PreKeys.RemovePreKey(ctx, used.oneTimeID); err != nil {
				return nil, fmt.Errorf("session: prekey store: %w", err)
			}
		}
	}
	if err := s.Sessions.StoreSession(ctx, remote, record); err != nil {
		return nil, fmt.Errorf("session: session store: %w", err)
	}
	return pt, nil
}

// decryptWithRecord tries the current state, then the previous ones, each on
// a copy; the record changes only on success.
func decryptWithRecord(rand io.Reader, record *Record, m *signalMessage, preKey bool) ([]byte, error) {
	if record.current != nil {
		st := record.current.clone()
		pt, err := decryptWithState(rand, st, m)
		switch {
		case err == nil:
			record.current = st
			return pt, nil
		case errors.Is(err, ErrDuplicateMessage):
			return nil, err
		case preKey:
			return nil, err
		}
	}
	for i, p := range record.previous {
		st := p.clone()
		pt, err := decryptWithState(rand, st, m)
		switch {
		case err == nil:
			record.promoteOld(i, st)
			return pt, nil
		case errors.Is(err, ErrDuplicateMessage):
			return nil, err
		}
	}
	if record.current == nil && len(record.previous) == 0 {
		return nil, ErrNoSession
	}
	return nil, fmt.Errorf("%w: no session state decrypts it", ErrInvalidMessage)
}

func decryptWithState(rand io.Reader, st *state, m *signalMessage) ([]byte, error) {
	if st.sender == nil {
		return nil, fmt.Errorf("%w: state without sender chain", ErrInvalidMessage)
	}
	if uint32(m.version) != st.version {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidMessage, m.version)
	}
	c, err := receiverChainFor(rand, st, m.ratchetKey)
	if err != nil {
		return nil, err
	}
	seed, err := messageSeed(st, c, m.counter)
	if err != nil {
		return nil, err
	}
	pqState, pqKey, err := spqr.Recv(st.pqState, m.pqRatchet)
	switch {
	case errors.Is(err, spqr.ErrMinimumVersion):
		return nil, fmt.Errorf("%w: %w: %w", ErrInvalidMessage, ErrNoPQRatchet, err)
	case err != nil:
		return nil, fmt.Errorf("%w: post-quantum ratchet: %w", ErrInvalidMessage, err)
	}
	mk, err := deriveMessageKeys(&seed, pqKey)
	clear(pqKey)
	if err != nil {
		return nil, err
	}
	defer mk.wipe()
	if !m.verifyMAC(&mk.macKey, st.remoteIdentity, st.localIdentity) {
		return nil, fmt.Errorf("%w: bad mac", ErrInvalidMessage)
	}
	pt, err := cbcDecrypt(&mk.cipherKey, &mk.iv, m.ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	st.pending, st.pendingKyber = nil, nil
	st.pqState = pqState
	return pt, nil
}

// receiverChainFor returns the receiver chain for their ratchet key, making
// it (a DH ratchet step) when it is new.
func receiverChainFor(rand io.Reader, st *state, their keys.PublicKey) (*chain, error) {
	if c := st.receiverChain(their); c != nil {
		return c, nil
	}
	recvRoot, recvChain, err := createChain(&st.rootKey, their, st.sender.ratchetPriv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	ours, err := keys.GenerateKeyPair(rand)
	if err != nil {
		return nil, err
	}
	sendRoot, sendChain, err := createChain(&recvRoot, their, ours.Private)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	st.rootKey = sendRoot
	st.addReceiverChain(their, recvChain)
	if st.sender.index > 0 {
		st.previousCounter = st.sender.index - 1
	} else {
		st.previousCounter = 0
	}
	st.sender = &chain{ratchetKey: ours.Public, ratchetPriv: ours.Private, hasPriv: true, key: sendChain}
	return st.receiverChain(their), nil
}

// messageSeed returns the message key seed for counter on chain c, keeping
// the seeds of skipped messages (at most maxMessageKeys, newest kept).
func messageSeed(st *state, c *chain, counter uint32) ([32]byte, error) {
	if c.index > counter {
		if seed, ok := c.takeSkipped(counter); ok {
			return seed, nil
		}
		return [32]byte{}, fmt.Errorf("%w: counter %d, chain at %d", ErrDuplicateMessage, counter, c.index)
	}
	jump := counter - c.index
	if jump > maxForwardJumps && !st.localIdentity.Equal(st.remoteIdentity) {
		return [32]byte{}, fmt.Errorf("%w: counter jump %d too large", ErrInvalidMessage, jump)
	}
	ck := c.key
	var fresh []skippedKey
	keep := uint32(maxMessageKeys)
	for i := c.index; i < counter; i++ {
		seed, next := chainStep(&ck)
		if counter-i <= keep {
			fresh = append(fresh, skippedKey{index: i, seed: seed})
		}
		ck = next
	}
	if len(fresh) > 0 {
		c.addSkippedBatch(fresh)
	}
	seed, next := chainStep(&ck)
	c.key, c.index = next, counter+1
	return seed, nil
}

// HasSession reports whether remote has a session with a usable current state.
func HasSession(ctx context.Context, s Stores, remote Address) (bool, error) {
	r, err := s.Sessions.LoadSession(ctx, remote)
	if err != nil {
		return false, fmt.Errorf("session: session store: %w", err)
	}
	return r.HasCurrentState(), nil
}
