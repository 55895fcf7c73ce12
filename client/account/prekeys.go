package account

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"sotto/signal/session"
	"sotto/wire"
)

// Prekey batch sizes and ages.
const (
	InitialPreKeys      = 100
	InitialKyberPreKeys = 20
	// ReplenishBelow: when the relay holds fewer one-time prekeys than
	// this, a new batch is uploaded.
	ReplenishBelow = 20
	maxPreKeyID    = 0xFFFFFF // Signal's prekey ids are 24-bit
	// RotateAfter is the age at which the signed EC prekey and the
	// last-resort Kyber prekey are replaced, limiting what a later
	// compromise of the device reveals of sessions started with them.
	RotateAfter = 7 * 24 * time.Hour
	// KeepRotated is how long replaced keys are kept, so that messages
	// already encrypted to them (queued while the device was offline)
	// still decrypt; the relay's mailbox keeps envelopes 30 days.
	KeepRotated = 35 * 24 * time.Hour
)

// PreKeyStore is where the private halves of new prekeys go: the Signal
// store, inside the caller's transaction.
type PreKeyStore interface {
	StorePreKey(ctx context.Context, id uint32, r *session.PreKeyRecord) error
	StoreSignedPreKey(ctx context.Context, id uint32, r *session.SignedPreKeyRecord) error
	StoreKyberPreKey(ctx context.Context, id uint32, r *session.KyberPreKeyRecord, lastResort bool) error
}

// Plan says what a refill makes, given what the relay holds (count): a
// batch of one-time EC and Kyber prekeys when it holds too few, and new
// signed and last-resort prekeys (rotate) when they are missing at the
// relay or older than RotateAfter.
func Plan(count *wire.PreKeyCountResponse, a *Account, now time.Time) (nEC, nKyber int, rotate bool) {
	if count.OneTimePrekeys < ReplenishBelow {
		nEC = InitialPreKeys
	}
	if count.OneTimeKyberPrekeys < ReplenishBelow/2 {
		nKyber = InitialKyberPreKeys
	}
	rotate = !count.HasSignedPrekey || !count.HasLastResortKyber ||
		now.Sub(time.UnixMilli(a.SignedPreKeyAt)) > RotateAfter
	return nEC, nKyber, rotate
}

// Generate makes and stores (in ks) a batch of prekeys, advancing a's
// counters, and returns their public halves for the relay. With first
// set it also makes the signed EC prekey (of id a.SignedPreKeyID) and the
// last-resort Kyber prekey. The caller saves a in the same transaction.
func Generate(ctx context.Context, ks PreKeyStore, a *Account, identity *session.IdentityKeyPair, nEC, nKyber int, first bool, now time.Time) (*wire.PreKeys, error) {
	out := &wire.PreKeys{}
	if first {
		spk, err := session.GenerateSignedPreKey(rand.Reader, identity, a.SignedPreKeyID, now)
		if err != nil {
			return nil, fmt.Errorf("client: signed prekey: %w", err)
		}
		if err := ks.StoreSignedPreKey(ctx, spk.ID(), spk); err != nil {
			return nil, err
		}
		out.SignedPrekey = &wire.SignedPreKey{Id: spk.ID(), PublicKey: spk.PublicKey(), Signature: spk.Signature()}
		lr, err := session.GenerateKyberPreKey(rand.Reader, identity, a.NextKyberID, now)
		if err != nil {
			return nil, fmt.Errorf("client: kyber prekey: %w", err)
		}
		a.NextKyberID = NextID(a.NextKyberID)
		if err := ks.StoreKyberPreKey(ctx, lr.ID(), lr, true); err != nil {
			return nil, err
		}
		out.LastResortKyber = &wire.SignedPreKey{Id: lr.ID(), PublicKey: lr.PublicKey(), Signature: lr.Signature()}
		a.LastResortID, a.SignedPreKeyAt = lr.ID(), now.UnixMilli()
	}
	pks, err := session.GeneratePreKeys(rand.Reader, a.NextPreKeyID, nEC)
	if err != nil {
		return nil, fmt.Errorf("client: prekeys: %w", err)
	}
	for _, pk := range pks {
		if err := ks.StorePreKey(ctx, pk.ID(), pk); err != nil {
			return nil, err
		}
		out.OneTimePrekeys = append(out.OneTimePrekeys, &wire.PreKey{Id: pk.ID(), PublicKey: pk.PublicKey()})
		a.NextPreKeyID = NextID(pk.ID())
	}
	for range nKyber {
		k, err := session.GenerateKyberPreKey(rand.Reader, identity, a.NextKyberID, now)
		if err != nil {
			return nil, fmt.Errorf("client: kyber prekey: %w", err)
		}
		a.NextKyberID = NextID(a.NextKyberID)
		if err := ks.StoreKyberPreKey(ctx, k.ID(), k, false); err != nil {
			return nil, err
		}
		out.OneTimeKyberPrekeys = append(out.OneTimeKyberPrekeys, &wire.SignedPreKey{Id: k.ID(), PublicKey: k.PublicKey(), Signature: k.Signature()})
	}
	return out, nil
}

// NextID is the prekey id after id (ids are 24-bit and wrap to 1).
func NextID(id uint32) uint32 {
	if id >= maxPreKeyID {
		return 1
	}
	return id + 1
}
