package spqr

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
)

// Labels of the Braid and its key chain (libsignal's).
const (
	labelAuthUpdate = "Signal_PQCKA_V1_MLKEM768:Authenticator Update"
	labelMacCt      = "Signal_PQCKA_V1_MLKEM768:ciphertext"
	labelMacHdr     = "Signal_PQCKA_V1_MLKEM768:ekheader"
	labelEpochKey   = "Signal_PQCKA_V1_MLKEM768:SCKA Key"
	labelChainStart = "Signal PQ Ratchet V1 Chain  Start" // two spaces, as libsignal
	labelChainEpoch = "Signal PQ Ratchet V1 Chain Add Epoch"
	labelChainNext  = "Signal PQ Ratchet V1 Chain Next"
	macSize         = 32
)

var zeroSalt = make([]byte, 32)

// kdf is HKDF-SHA-256 (extract with salt, expand with info) to n bytes.
func kdf(salt, ikm []byte, info string, n int) []byte {
	out, err := hkdf.Key(sha256.New, ikm, salt, info, n)
	if err != nil {
		panic("spqr: hkdf: " + err.Error()) // only for n > 255*32, never asked
	}
	return out
}

func epochBytes(ep uint64) []byte { return binary.BigEndian.AppendUint64(nil, ep) }

// epochSecret derives the epoch's secret from the ML-KEM shared secret.
func epochSecret(ep uint64, ss []byte) []byte {
	return kdf(zeroSalt, ss, labelEpochKey+string(epochBytes(ep)), 32)
}

// authenticator MACs the header and the ciphertext of each epoch; its keys
// are updated with every epoch's secret.
type authenticator struct {
	root, mac []byte
}

func newAuthenticator(key []byte, ep uint64) authenticator {
	a := authenticator{root: make([]byte, 32), mac: make([]byte, 32)}
	a.update(ep, key)
	return a
}

func (a *authenticator) update(ep uint64, k []byte) {
	ikm := append(append([]byte(nil), a.root...), k...)
	out := kdf(zeroSalt, ikm, labelAuthUpdate+string(epochBytes(ep)), 64)
	a.root, a.mac = out[:32:32], out[32:]
}

func (a *authenticator) tag(label string, ep uint64, data []byte) []byte {
	m := hmac.New(sha256.New, a.mac)
	m.Write([]byte(label))
	m.Write(epochBytes(ep))
	m.Write(data)
	return m.Sum(nil)
}

func (a *authenticator) macHdr(ep uint64, hdr []byte) []byte { return a.tag(labelMacHdr, ep, hdr) }
func (a *authenticator) macCt(ep uint64, ct []byte) []byte   { return a.tag(labelMacCt, ep, ct) }

func (a *authenticator) verify(want, got []byte) error {
	if !hmac.Equal(want, got) {
		return ErrMAC
	}
	return nil
}
