package session

import (
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"sotto/signal/keys"
)

// PreKeyRecord is a one-time Curve25519 prekey with its private half.
type PreKeyRecord struct {
	id   uint32
	pair keys.KeyPair
}

// NewPreKeyRecord wraps a key pair as prekey id.
func NewPreKeyRecord(id uint32, kp keys.KeyPair) *PreKeyRecord {
	return &PreKeyRecord{id: id, pair: kp}
}

// GeneratePreKeys makes n one-time prekeys with ids startID, startID+1, ...
// Choosing ids (Signal clients keep them within 1..0xFFFFFF) is the caller's.
func GeneratePreKeys(rand io.Reader, startID uint32, n int) ([]*PreKeyRecord, error) {
	out := make([]*PreKeyRecord, 0, n)
	for i := 0; i < n; i++ {
		kp, err := keys.GenerateKeyPair(rand)
		if err != nil {
			return nil, err
		}
		out = append(out, &PreKeyRecord{id: startID + uint32(i), pair: kp})
	}
	return out, nil
}

// ID returns the prekey id.
func (r *PreKeyRecord) ID() uint32 { return r.id }

// PublicKey returns the serialized public key (0x05 || 32 bytes).
func (r *PreKeyRecord) PublicKey() []byte { return r.pair.Public.Serialize() }

// KeyPair returns the key pair.
func (r *PreKeyRecord) KeyPair() keys.KeyPair { return r.pair }

// Serialize encodes the record as libsignal's PreKeyRecordStructure.
func (r *PreKeyRecord) Serialize() []byte {
	var b []byte
	b = appendVarintField(b, 1, uint64(r.id))
	b = appendBytesField(b, 2, r.pair.Public.Serialize())
	b = appendBytesField(b, 3, r.pair.Private.Bytes())
	return b
}

// String never reveals the private key.
func (r *PreKeyRecord) String() string { return fmt.Sprintf("PreKeyRecord(%d)", r.id) }

// ParsePreKeyRecord decodes PreKeyRecord.Serialize's output.
func ParsePreKeyRecord(b []byte) (*PreKeyRecord, error) {
	f, err := parseKeyRecord(b)
	if err != nil {
		return nil, err
	}
	return &PreKeyRecord{id: f.id, pair: f.pair}, nil
}

// SignedPreKeyRecord is a signed Curve25519 prekey.
type SignedPreKeyRecord struct {
	id        uint32
	pair      keys.KeyPair
	signature []byte
	timestamp uint64 // milliseconds since the Unix epoch
}

// GenerateSignedPreKey makes a prekey signed by identity over its
// serialized public key.
func GenerateSignedPreKey(rand io.Reader, identity *IdentityKeyPair, id uint32, ts time.Time) (*SignedPreKeyRecord, error) {
	kp, err := keys.GenerateKeyPair(rand)
	if err != nil {
		return nil, err
	}
	sig, err := identity.Sign(rand, kp.Public.Serialize())
	if err != nil {
		return nil, err
	}
	return &SignedPreKeyRecord{id: id, pair: kp, signature: sig, timestamp: uint64(ts.UnixMilli())}, nil
}

// ID returns the prekey id.
func (r *SignedPreKeyRecord) ID() uint32 { return r.id }

// PublicKey returns the serialized public key (0x05 || 32 bytes).
func (r *SignedPreKeyRecord) PublicKey() []byte { return r.pair.Public.Serialize() }

// Signature returns the identity key's XEdDSA signature over PublicKey().
func (r *SignedPreKeyRecord) Signature() []byte { return append([]byte(nil), r.signature...) }

// Timestamp returns the creation time.
func (r *SignedPreKeyRecord) Timestamp() time.Time { return time.UnixMilli(int64(r.timestamp)) }

// KeyPair returns the key pair.
func (r *SignedPreKeyRecord) KeyPair() keys.KeyPair { return r.pair }

// String never reveals the private key.
func (r *SignedPreKeyRecord) String() string { return fmt.Sprintf("SignedPreKeyRecord(%d)", r.id) }

// Serialize encodes the record as libsignal's SignedPreKeyRecordStructure.
func (r *SignedPreKeyRecord) Serialize() []byte {
	return serializeSignedRecord(r.id, r.pair.Public.Serialize(), r.pair.Private.Bytes(), r.signature, r.timestamp)
}

// ParseSignedPreKeyRecord decodes SignedPreKeyRecord.Serialize's output.
func ParseSignedPreKeyRecord(b []byte) (*SignedPreKeyRecord, error) {
	f, err := parseKeyRecord(b)
	if err != nil {
		return nil, err
	}
	return &SignedPreKeyRecord{id: f.id, pair: f.pair, signature: f.signature, timestamp: f.timestamp}, nil
}

// KyberPreKeyRecord is a signed Kyber-1024 prekey (one-time or last-resort;
// the store decides which).
type KyberPreKeyRecord struct {
	id        uint32
	pair      *keys.KEMKeyPair
	signature []byte
	timestamp uint64
}

// GenerateKyberPreKey makes a Kyber-1024 prekey signed by identity over its
// serialized public key.
func GenerateKyberPreKey(rand io.Reader, identity *IdentityKeyPair, id uint32, ts time.Time) (*KyberPreKeyRecord, error) {
	kp, err := keys.GenerateKEMKeyPair(rand)
	if err != nil {
		return nil, err
	}
	sig, err := identity.Sign(rand, kp.Public.Serialize())
	if err != nil {
		return nil, err
	}
	return &KyberPreKeyRecord{id: id, pair: kp, signature: sig, timestamp: uint64(ts.UnixMilli())}, nil
}

// ID returns the prekey id.
func (r *KyberPreKeyRecord) ID() uint32 { return r.id }

// PublicKey returns the serialized public key (0x08 || 1568 bytes).
func (r *KyberPreKeyRecord) PublicKey() []byte { return r.pair.Public.Serialize() }

// Signature returns the identity key's XEdDSA signature over PublicKey().
func (r *KyberPreKeyRecord) Signature() []byte { return append([]byte(nil), r.signature...) }

// Timestamp returns the creation time.
func (r *KyberPreKeyRecord) Timestamp() time.Time { return time.UnixMilli(int64(r.timestamp)) }

// KeyPair returns the KEM key pair.
func (r *KyberPreKeyRecord) KeyPair() *keys.KEMKeyPair { return r.pair }

// String never reveals the private key.
func (r *KyberPreKeyRecord) String() string { return fmt.Sprintf("KyberPreKeyRecord(%d)", r.id) }

// Serialize encodes the record as libsignal does (the signed prekey layout
// with KEM keys).
func (r *KyberPreKeyRecord) Serialize() []byte {
	return serializeSignedRecord(r.id, r.pair.Public.Serialize(), r.pair.Private.Serialize(), r.signature, r.timestamp)
}

// ParseKyberPreKeyRecord decodes KyberPreKeyRecord.Serialize's output.
func ParseKyberPreKeyRecord(b []byte) (*KyberPreKeyRecord, error) {
	var id uint32
	var pub, priv, sig []byte
	var ts uint64
	err := pbWalk(b, func(f pbField) error {
		var err error
		switch f.num {
		case 1:
			id, err = u32(f)
		case 2:
			pub, err = wantBytes(f)
		case 3:
			priv, err = wantBytes(f)
		case 4:
			sig, err = wantBytes(f)
		case 5:
			ts = f.varint
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: kyber prekey: %v", ErrInvalidRecord, err)
	}
	pk, err := keys.ParseKEMPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: kyber prekey: %w", ErrInvalidRecord, err)
	}
	sk, err := keys.ParseKEMPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: kyber prekey: %w", ErrInvalidRecord, err)
	}
	return &KyberPreKeyRecord{id: id, pair: &keys.KEMKeyPair{Public: pk, Private: sk},
		signature: append([]byte(nil), sig...), timestamp: ts}, nil
}

func serializeSignedRecord(id uint32, pub, priv, sig []byte, ts uint64) []byte {
	var b []byte
	b = appendVarintField(b, 1, uint64(id))
	b = appendBytesField(b, 2, pub)
	b = appendBytesField(b, 3, priv)
	b = appendBytesField(b, 4, sig)
	b = protowire.AppendTag(b, 5, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, ts)
	return b
}

type keyRecordFields struct {
	id        uint32
	pair      keys.KeyPair
	signature []byte
	timestamp uint64
}

func parseKeyRecord(b []byte) (*keyRecordFields, error) {
	var r keyRecordFields
	var pub, priv []byte
	err := pbWalk(b, func(f pbField) error {
		var err error
		switch f.num {
		case 1:
			r.id, err = u32(f)
		case 2:
			pub, err = wantBytes(f)
		case 3:
			priv, err = wantBytes(f)
		case 4:
			r.signature, err = wantBytes(f)
			r.signature = append([]byte(nil), r.signature...)
		case 5:
			r.timestamp = f.varint
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: prekey: %v", ErrInvalidRecord, err)
	}
	p, err := keys.ParsePrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: prekey: %w", ErrInvalidRecord, err)
	}
	r.pair = keys.NewKeyPair(p)
	if pub != nil {
		pk, err := keys.ParsePublicKey(pub)
		if err != nil || !pk.Equal(r.pair.Public) {
			return nil, fmt.Errorf("%w: prekey public key mismatch", ErrInvalidRecord)
		}
	}
	return &r, nil
}
