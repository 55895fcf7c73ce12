package session

import (
	"context"
	"fmt"
	"io"
	"time"

	"sotto/signal/keys"
	"sotto/signal/spqr"
)

// discontinuity is the 32 0xFF bytes prefixed to the PQXDH secret.
var discontinuity = [32]byte{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
}

// ProcessPreKeyBundle verifies a remote device's bundle and starts a session
// with it as initiator (PQXDH). The next Encrypt yields a PreKeySignalMessage.
func ProcessPreKeyBundle(ctx context.Context, rand io.Reader, s Stores, remote Address, b *PreKeyBundle, now time.Time) error {
	theirIdentity, err := keys.ParsePublicKey(b.IdentityKey)
	if err != nil {
		return fmt.Errorf("session: bundle identity key: %w", err)
	}
	theirIdentityBytes := theirIdentity.Serialize()
	trusted, err := s.Identity.IsTrustedIdentity(ctx, remote, theirIdentityBytes, Sending)
	if err != nil {
		return fmt.Errorf("session: identity store: %w", err)
	}
	if !trusted {
		return fmt.Errorf("%w: %s", ErrUntrustedIdentity, remote)
	}
	signedPreKey, err := keys.ParsePublicKey(b.SignedPreKey)
	if err != nil {
		return fmt.Errorf("session: bundle signed prekey: %w", err)
	}
	if !theirIdentity.Verify(b.SignedPreKeySignature, signedPreKey.Serialize()) {
		return fmt.Errorf("%w: signed prekey", ErrBadSignature)
	}
	kyberPreKey, err := keys.ParseKEMPublicKey(b.KyberPreKey)
	if err != nil {
		return fmt.Errorf("session: bundle kyber prekey: %w", err)
	}
	if !theirIdentity.Verify(b.KyberPreKeySignature, b.KyberPreKey) {
		return fmt.Errorf("%w: kyber prekey", ErrBadSignature)
	}
	var oneTime keys.PublicKey
	if b.HasPreKey {
		if oneTime, err = keys.ParsePublicKey(b.PreKey); err != nil {
			return fmt.Errorf("session: bundle one-time prekey: %w", err)
		}
	}

	record, err := s.Sessions.LoadSession(ctx, remote)
	if err != nil {
		return fmt.Errorf("session: session store: %w", err)
	}
	if record == nil {
		record = NewRecord()
	}
	ours, err := s.Identity.IdentityKeyPair(ctx)
	if err != nil {
		return fmt.Errorf("session: identity store: %w", err)
	}
	localRegID, err := s.Identity.LocalRegistrationID(ctx)
	if err != nil {
		return fmt.Errorf("session: identity store: %w", err)
	}

	base, err := keys.GenerateKeyPair(rand)
	if err != nil {
		return err
	}
	st, err := initiate(rand, ours, base, theirIdentity, signedPreKey, oneTime, b.HasPreKey, kyberPreKey)
	if err != nil {
		return err
	}
	st.pending = &pendingPreKey{
		hasPreKeyID:    b.HasPreKey,
		preKeyID:       b.PreKeyID,
		signedPreKeyID: b.SignedPreKeyID,
		baseKey:        base.Public,
		timestampSec:   uint64(now.Unix()), // seconds, as libsignal stores it
	}
	st.pendingKyber.preKeyID = b.KyberPreKeyID
	st.localRegID = localRegID
	st.remoteRegID = b.RegistrationID

	if _, err := s.Identity.SaveIdentity(ctx, remote, theirIdentityBytes); err != nil {
		return fmt.Errorf("session: identity store: %w", err)
	}
	record.promote(st)
	if err := s.Sessions.StoreSession(ctx, remote, record); err != nil {
		return fmt.Errorf("session: session store: %w", err)
	}
	return nil
}

// initiate is the PQXDH initiator ("Alice") as libsignal derives it.
func initiate(rand io.Reader, ours *IdentityKeyPair, base keys.KeyPair, theirIdentity, theirSigned, theirOneTime keys.PublicKey,
	hasOneTime bool, theirKyber *keys.KEMPublicKey) (*state, error) {
	secret := make([]byte, 0, 32*6)
	secret = append(secret, discontinuity[:]...)
	dhs := []struct {
		priv keys.PrivateKey
		pub  keys.PublicKey
	}{
		{ours.PrivateKey(), theirSigned},
		{base.Private, theirIdentity},
		{base.Private, theirSigned},
	}
	if hasOneTime {
		dhs = append(dhs, struct {
			priv keys.PrivateKey
			pub  keys.PublicKey
		}{base.Private, theirOneTime})
	}
	for _, d := range dhs {
		s, err := d.priv.Agree(d.pub)
		if err != nil {
			return nil, fmt.Errorf("session: pqxdh: %w", err)
		}
		secret = append(secret, s...)
		clear(s)
	}
	ct, ss, err := theirKyber.Encapsulate(rand)
	if err != nil {
		return nil, err
	}
	secret = append(secret, ss...)
	clear(ss)
	root, chainKey, pqrKey, err := deriveInitial(secret)
	clear(secret)
	if err != nil {
		return nil, err
	}
	pq, err := initialPQState(pqrKey, spqr.AToB, ours.PublicKey(), theirIdentity)
	if err != nil {
		return nil, err
	}
	sending, err := keys.GenerateKeyPair(rand)
	if err != nil {
		return nil, err
	}
	sendRoot, sendChain, err := createChain(&root, theirSigned, sending.Private)
	if err != nil {
		return nil, err
	}
	st := &state{
		version:        currentVersion,
		localIdentity:  ours.PublicKey(),
		remoteIdentity: theirIdentity,
		rootKey:        sendRoot,
		aliceBaseKey:   base.Public,
		receivers:      []*chain{{ratchetKey: theirSigned, key: chainKey}},
		sender:         &chain{ratchetKey: sending.Public, ratchetPriv: sending.Private, hasPriv: true, key: sendChain},
		pendingKyber:   &pendingKyber{ciphertext: ct},
		pqState:        pq,
	}
	return st, nil
}

// respond is the PQXDH responder ("Bob") as libsignal derives it.
func respond(ours *IdentityKeyPair, signed keys.KeyPair, oneTime *keys.KeyPair, kyber *keys.KEMKeyPair,
	theirIdentity, theirBase keys.PublicKey, kyberCT []byte) (*state, error) {
	if !theirBase.IsCanonical() {
		return nil, fmt.Errorf("%w: base key is not canonical", ErrInvalidMessage)
	}
	secret := make([]byte, 0, 32*6)
	secret = append(secret, discontinuity[:]...)
	dhs := []struct {
		priv keys.PrivateKey
		pub  keys.PublicKey
	}{
		{signed.Private, theirIdentity},
		{ours.PrivateKey(), theirBase},
		{signed.Private, theirBase},
	}
	if oneTime != nil {
		dhs = append(dhs, struct {
			priv keys.PrivateKey
			pub  keys.PublicKey
		}{oneTime.Private, theirBase})
	}
	for _, d := range dhs {
		s, err := d.priv.Agree(d.pub)
		if err != nil {
			return nil, fmt.Errorf("%w: pqxdh: %v", ErrInvalidMessage, err)
		}
		secret = append(secret, s...)
		clear(s)
	}
	ss, err := kyber.Private.Decapsulate(kyberCT)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	secret = append(secret, ss...)
	clear(ss)
	root, chainKey, pqrKey, err := deriveInitial(secret)
	clear(secret)
	if err != nil {
		return nil, err
	}
	pq, err := initialPQState(pqrKey, spqr.BToA, ours.PublicKey(), theirIdentity)
	if err != nil {
		return nil, err
	}
	return &state{
		version:        currentVersion,
		localIdentity:  ours.PublicKey(),
		remoteIdentity: theirIdentity,
		rootKey:        root,
		aliceBaseKey:   theirBase,
		sender:         &chain{ratchetKey: signed.Public, ratchetPriv: signed.Private, hasPriv: true, key: chainKey},
		pqState:        pq,
	}, nil
}

// preKeysUsed lists what processing a PreKeySignalMessage consumed.
type preKeysUsed struct {
	hasOneTime bool
	oneTimeID  uint32
	kyberID    uint32
}

// processPreKey sets up (or finds) the session a PreKeySignalMessage starts.
// It returns nil when the message belongs to an existing session.
func processPreKey(ctx context.Context, s Stores, remote Address, record *Record, m *preKeySignalMessage) (*preKeysUsed, error) {
	trusted, err := s.Identity.IsTrustedIdentity(ctx, remote, m.identityKey.Serialize(), Receiving)
	if err != nil {
		return nil, fmt.Errorf("session: identity store: %w", err)
	}
	if !trusted {
		return nil, fmt.Errorf("%w: %s", ErrUntrustedIdentity, remote)
	}
	if record.promoteMatching(uint32(m.version), m.baseKey) {
		return nil, nil
	}
	signed, err := s.SignedPreKeys.LoadSignedPreKey(ctx, m.signedPreKeyID)
	if err = keyErr("signed prekey", signed == nil, err); err != nil {
		return nil, err
	}
	kyber, err := s.KyberPreKeys.LoadKyberPreKey(ctx, m.kyberPreKeyID)
	if err = keyErr("kyber prekey", kyber == nil, err); err != nil {
		return nil, err
	}
	var oneTime *keys.KeyPair
	if m.hasPreKeyID {
		pk, err := s.PreKeys.LoadPreKey(ctx, m.preKeyID)
		if err = keyErr("prekey", pk == nil, err); err != nil {
			return nil, err
		}
		kp := pk.KeyPair()
		oneTime = &kp
	}
	ours, err := s.Identity.IdentityKeyPair(ctx)
	if err != nil {
		return nil, fmt.Errorf("session: identity store: %w", err)
	}
	localRegID, err := s.Identity.LocalRegistrationID(ctx)
	if err != nil {
		return nil, fmt.Errorf("session: identity store: %w", err)
	}
	st, err := respond(ours, signed.KeyPair(), oneTime, kyber.KeyPair(), m.identityKey, m.baseKey, m.kyberCT)
	if err != nil {
		return nil, err
	}
	st.localRegID = localRegID
	st.remoteRegID = m.registrationID
	record.promote(st)
	return &preKeysUsed{hasOneTime: m.hasPreKeyID, oneTimeID: m.preKeyID, kyberID: m.kyberPreKeyID}, nil
}

// keyErr reports a failed prekey lookup; a store that returns nil, nil
// for an unknown id is treated as returning ErrInvalidKeyID.
func keyErr(what string, missing bool, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("session: %s: %w", what, err)
	case missing:
		return fmt.Errorf("%w: %s", ErrInvalidKeyID, what)
	}
	return nil
}

// initialPQState starts the session's SPQR state. Sotto requires SPQR of
// its peers (minimum version 1): a peer whose messages carry no pq_ratchet
// data is refused rather than silently downgraded.
func initialPQState(authKey [32]byte, dir spqr.Direction, local, remote keys.PublicKey) ([]byte, error) {
	st, err := spqr.InitialState(spqr.Params{
		Direction:   dir,
		Version:     spqr.Version1,
		MinVersion:  spqr.Version1,
		AuthKey:     authKey[:],
		SelfSession: local.Equal(remote),
	})
	if err != nil {
		return nil, fmt.Errorf("session: spqr: %w", err)
	}
	return st, nil
}
