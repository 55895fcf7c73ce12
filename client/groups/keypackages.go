package groups

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"sotto/mls"
)

// KeyPackage stock on the relay, refilled like prekeys.
const (
	keyPackagesLow    = 10 // refill below this many one-time KeyPackages
	keyPackagesTarget = 40
)

// kpRecord keeps what a published KeyPackage needs to be joined with.
type kpRecord struct {
	KeyPackage []byte `json:"kp"`
	Init       []byte `json:"init"`
	Encryption []byte `json:"enc"`
	LastResort bool   `json:"last_resort,omitempty"`
}

func kpName(kp []byte) []byte {
	h := sha256.Sum256(kp)
	return h[:16]
}

// RefillKeyPackages tops this device's KeyPackages on the relay up to the
// target when they ran low, and uploads a last-resort one if it has none.
// It returns how many it uploaded.
func (m *Manager) RefillKeyPackages(ctx context.Context) (int, error) {
	r, err := m.relay()
	if err != nil {
		return 0, err
	}
	n, err := r.KeyPackageCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("groups: key package count: %w", err)
	}
	want := 0
	if int(n.OneTime) < keyPackagesLow {
		want = keyPackagesTarget - int(n.OneTime)
	}
	if want == 0 && n.HasLastResort {
		return 0, nil
	}
	identity, seed, err := m.ownIdentity(ctx)
	if err != nil {
		return 0, err
	}
	var oneTime [][]byte
	var last []byte
	make1 := func(lastResort bool) ([]byte, error) {
		kp, keys, err := mls.NewKeyPackageWithOptions(Suite, identity, seed, &mls.KeyPackageOptions{SupportedExtensions: supportedExtensions})
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(kpRecord{KeyPackage: kp, Init: keys.Init, Encryption: keys.Encryption, LastResort: lastResort})
		if err != nil {
			return nil, err
		}
		// Kept before it is published: a Welcome may answer it at once.
		return kp, m.kv.Put(ctx, tblKeyPackages, kpName(kp), b)
	}
	for range want {
		kp, err := make1(false)
		if err != nil {
			return 0, err
		}
		oneTime = append(oneTime, kp)
	}
	if !n.HasLastResort {
		if last, err = make1(true); err != nil {
			return 0, err
		}
	}
	if err := r.UploadKeyPackages(ctx, oneTime, last); err != nil {
		return 0, fmt.Errorf("groups: upload key packages: %w", err)
	}
	count := len(oneTime)
	if last != nil {
		count++
	}
	return count, nil
}

// joinWelcome joins a group from a Welcome addressed to one of this
// device's KeyPackages, vetting every leaf; the one-time KeyPackage used
// is forgotten.
func (m *Manager) joinWelcome(ctx context.Context, welcome []byte) (*mls.Group, *validator, error) {
	es, err := m.kv.List(ctx, tblKeyPackages)
	if err != nil {
		return nil, nil, err
	}
	seed, _, err := m.signatureKey(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range es {
		var kr kpRecord
		if err := json.Unmarshal(e.Value, &kr); err != nil {
			continue
		}
		v := m.validator()
		g, err := mls.Join(welcome, kr.KeyPackage, mls.PrivateKeys{Init: kr.Init, Encryption: kr.Encryption, Signature: seed},
			&mls.JoinOptions{CredentialValidator: v})
		if errors.Is(err, mls.ErrCredentialRejected) {
			return nil, v, err
		}
		if err != nil {
			continue // not for this KeyPackage
		}
		if !kr.LastResort {
			if err := m.kv.Delete(ctx, tblKeyPackages, e.Key); err != nil {
				return nil, nil, err
			}
		}
		return g, v, nil
	}
	return nil, nil, fmt.Errorf("groups: a welcome for none of this device's key packages")
}

// NewKeyPackage makes a KeyPackage for identity (an encoded credential,
// NewIdentity) signed with signatureKey, listing the group context
// extensions this package's groups use, as a device's own refills do.
// For tools that stand in for many devices (sotto-load); the private
// keys are not returned.
func NewKeyPackage(identity, signatureKey []byte) ([]byte, error) {
	kp, _, err := mls.NewKeyPackageWithOptions(Suite, identity, signatureKey, &mls.KeyPackageOptions{SupportedExtensions: supportedExtensions})
	return kp, err
}
