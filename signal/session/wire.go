package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"

	"sotto/signal/keys"
)

const macSize = 8

// signalMessage is libsignal's SignalMessage: a version byte, the protobuf,
// and an 8-byte truncated HMAC-SHA256.
type signalMessage struct {
	version         uint8
	ratchetKey      keys.PublicKey
	counter         uint32
	previousCounter uint32
	ciphertext      []byte
	pqRatchet       []byte // SPQR message (field 5)
	serialized      []byte
}

// versionByte is (message version << 4) | current version, 0x44.
func versionByte(v uint8) byte { return (v&0xf)<<4 | currentVersion }

func parseSignalMessage(b []byte) (*signalMessage, error) {
	if len(b) < macSize+1 {
		return nil, fmt.Errorf("%w: message too short", ErrInvalidMessage)
	}
	m := &signalMessage{version: b[0] >> 4, serialized: b}
	if m.version != currentVersion {
		return nil, fmt.Errorf("%w: message version %d", ErrInvalidMessage, m.version)
	}
	var haveKey, haveCounter, haveCT bool
	err := pbWalk(b[1:len(b)-macSize], func(f pbField) error {
		var err error
		switch f.num {
		case 1:
			var v []byte
			if v, err = wantBytes(f); err == nil {
				m.ratchetKey, err = keys.ParsePublicKey(v)
				haveKey = true
			}
		case 2:
			m.counter, err = u32(f)
			haveCounter = true
		case 3:
			m.previousCounter, err = u32(f)
		case 4:
			m.ciphertext, err = wantBytes(f)
			haveCT = true
		case 5:
			m.pqRatchet, err = wantBytes(f)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	if !haveKey || !haveCounter || !haveCT {
		return nil, fmt.Errorf("%w: missing field", ErrInvalidMessage)
	}
	return m, nil
}

// messageMAC computes the truncated MAC over sender identity, receiver
// identity and the serialized message (without its MAC).
func messageMAC(macKey *[32]byte, sender, receiver keys.PublicKey, content []byte) [macSize]byte {
	m := hmac.New(sha256.New, macKey[:])
	var idb [2 * keys.SerializedKeySize]byte
	sender.AppendSerialized(idb[:0])
	receiver.AppendSerialized(idb[keys.SerializedKeySize:keys.SerializedKeySize])
	m.Write(idb[:])
	m.Write(content)
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	var out [macSize]byte
	copy(out[:], sum[:macSize])
	return out
}

func (m *signalMessage) verifyMAC(macKey *[32]byte, sender, receiver keys.PublicKey) bool {
	n := len(m.serialized)
	want := messageMAC(macKey, sender, receiver, m.serialized[:n-macSize])
	return hmac.Equal(want[:], m.serialized[n-macSize:])
}

// encodeSignalMessage builds a serialized SignalMessage.
func encodeSignalMessage(macKey *[32]byte, ratchetKey keys.PublicKey, counter, previousCounter uint32,
	ciphertext, pqRatchet []byte, sender, receiver keys.PublicKey) []byte {
	b := make([]byte, 0, 1+2+keys.SerializedKeySize+12+4+len(ciphertext)+3+len(pqRatchet)+macSize)
	b = append(b, versionByte(currentVersion))
	b = appendBytesField(b, 1, ratchetKey.Serialize())
	b = appendVarintField(b, 2, uint64(counter))
	b = appendVarintField(b, 3, uint64(previousCounter))
	b = appendBytesField(b, 4, ciphertext)
	if len(pqRatchet) > 0 {
		b = appendBytesField(b, 5, pqRatchet)
	}
	mac := messageMAC(macKey, sender, receiver, b)
	return append(b, mac[:]...)
}

// preKeySignalMessage is libsignal's PreKeySignalMessage.
type preKeySignalMessage struct {
	version        uint8
	registrationID uint32
	hasPreKeyID    bool
	preKeyID       uint32
	signedPreKeyID uint32
	hasKyber       bool
	kyberPreKeyID  uint32
	kyberCT        []byte
	baseKey        keys.PublicKey
	identityKey    keys.PublicKey
	message        *signalMessage
}

func parsePreKeySignalMessage(b []byte) (*preKeySignalMessage, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty prekey message", ErrInvalidMessage)
	}
	m := &preKeySignalMessage{version: b[0] >> 4}
	if m.version != currentVersion {
		return nil, fmt.Errorf("%w: prekey message version %d", ErrInvalidMessage, m.version)
	}
	var haveSigned, haveBase, haveIdentity, haveKyberID, haveKyberCT bool
	var inner []byte
	err := pbWalk(b[1:], func(f pbField) error {
		var err error
		var v []byte
		switch f.num {
		case 5:
			m.registrationID, err = u32(f)
		case 1:
			m.preKeyID, err = u32(f)
			m.hasPreKeyID = true
		case 6:
			m.signedPreKeyID, err = u32(f)
			haveSigned = true
		case 7:
			m.kyberPreKeyID, err = u32(f)
			haveKyberID = true
		case 8:
			m.kyberCT, err = wantBytes(f)
			haveKyberCT = true
		case 2:
			if v, err = wantBytes(f); err == nil {
				m.baseKey, err = keys.ParsePublicKey(v)
				haveBase = true
			}
		case 3:
			if v, err = wantBytes(f); err == nil {
				m.identityKey, err = keys.ParsePublicKey(v)
				haveIdentity = true
			}
		case 4:
			inner, err = wantBytes(f)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	if !haveSigned || !haveBase || !haveIdentity || inner == nil {
		return nil, fmt.Errorf("%w: prekey message missing field", ErrInvalidMessage)
	}
	if !haveKyberID || !haveKyberCT {
		return nil, fmt.Errorf("%w: prekey message without kyber payload", ErrInvalidMessage)
	}
	m.hasKyber = true
	if m.message, err = parseSignalMessage(inner); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *preKeySignalMessage) encode(inner []byte) []byte {
	b := make([]byte, 0, 64+len(m.kyberCT)+2*keys.SerializedKeySize+len(inner))
	b = append(b, versionByte(m.version))
	if m.hasPreKeyID {
		b = appendVarintField(b, 1, uint64(m.preKeyID))
	}
	b = appendBytesField(b, 2, m.baseKey.Serialize())
	b = appendBytesField(b, 3, m.identityKey.Serialize())
	b = appendBytesField(b, 4, inner)
	b = appendVarintField(b, 5, uint64(m.registrationID))
	b = appendVarintField(b, 6, uint64(m.signedPreKeyID))
	if m.hasKyber {
		b = appendVarintField(b, 7, uint64(m.kyberPreKeyID))
		b = appendBytesField(b, 8, m.kyberCT)
	}
	return b
}
