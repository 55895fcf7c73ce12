package mls

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
)

// contextSealer is EncryptWithLabel (RFC 9420 §5.1.3) for many recipients
// that share one label and context, as the GroupSecrets of a Welcome do
// (their context is the whole encrypted GroupInfo, ratchet tree
// included). crypto/hpke hashes the info once per recipient; this runs
// the same RFC 9180 base-mode steps (DHKEM encapsulation with
// crypto/ecdh, the key schedule with crypto/hkdf, the suite's AEAD) with
// the info hash computed once. Its output is opened by crypto/hpke
// (decryptWithLabel); tests check this for every suite.
type contextSealer struct {
	s         *suite
	curve     ecdh.Curve
	kemHash   func() hash.Hash
	nSecret   int
	kemSuite  []byte // "KEM" || kem_id
	hpkeSuite []byte // "HPKE" || kem_id || kdf_id || aead_id
	ksContext []byte // mode_base || psk_id_hash || info_hash
}

func (s *suite) newContextSealer(label string, context []byte) (*contextSealer, error) {
	c := &contextSealer{s: s}
	kemID := s.kem.ID()
	switch kemID {
	case 0x0020:
		c.curve, c.kemHash, c.nSecret = ecdh.X25519(), func() hash.Hash { return sha256.New() }, 32
	case 0x0010:
		c.curve, c.kemHash, c.nSecret = ecdh.P256(), func() hash.Hash { return sha256.New() }, 32
	case 0x0011:
		c.curve, c.kemHash, c.nSecret = ecdh.P384(), func() hash.Hash { return sha512.New384() }, 48
	case 0x0012:
		c.curve, c.kemHash, c.nSecret = ecdh.P521(), func() hash.Hash { return sha512.New() }, 64
	default:
		return nil, fmt.Errorf("%w: kem %#04x", ErrUnsupportedCipherSuite, kemID)
	}
	c.kemSuite = binary.BigEndian.AppendUint16([]byte("KEM"), kemID)
	c.hpkeSuite = binary.BigEndian.AppendUint16([]byte("HPKE"), kemID)
	c.hpkeSuite = binary.BigEndian.AppendUint16(c.hpkeSuite, s.kdf.ID())
	c.hpkeSuite = binary.BigEndian.AppendUint16(c.hpkeSuite, s.aead.ID())
	info := labeled(label, context)
	if info == nil {
		return nil, fmt.Errorf("%w: context too long", ErrDecode)
	}
	pskIDHash, err := labeledExtract(s.newHash, c.hpkeSuite, nil, "psk_id_hash", nil)
	if err != nil {
		return nil, err
	}
	infoHash, err := labeledExtract(s.newHash, c.hpkeSuite, nil, "info_hash", info)
	if err != nil {
		return nil, err
	}
	c.ksContext = append(append([]byte{0}, pskIDHash...), infoHash...)
	return c, nil
}

// labeledExtract is LabeledExtract of RFC 9180 §4.
func labeledExtract(h func() hash.Hash, suiteID, salt []byte, label string, ikm []byte) ([]byte, error) {
	in := make([]byte, 0, 7+len(suiteID)+len(label)+len(ikm))
	in = append(append(append(append(in, "HPKE-v1"...), suiteID...), label...), ikm...)
	out, err := hkdf.Extract(h, in, salt)
	if err != nil {
		return nil, fmt.Errorf("mls: hpke extract: %w", err)
	}
	return out, nil
}

// labeledExpand is LabeledExpand of RFC 9180 §4.
func labeledExpand(h func() hash.Hash, suiteID, prk []byte, label string, info []byte, n int) ([]byte, error) {
	in := binary.BigEndian.AppendUint16(nil, uint16(n))
	in = append(append(append(append(in, "HPKE-v1"...), suiteID...), label...), info...)
	out, err := hkdf.Expand(h, prk, string(in), n)
	if err != nil {
		return nil, fmt.Errorf("mls: hpke expand: %w", err)
	}
	return out, nil
}

// seal encrypts pt to the public key pub: SealBase with empty aad.
func (c *contextSealer) seal(pub, pt []byte) (enc, ct []byte, err error) {
	pkR, err := c.curve.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: hpke public key", ErrInvalidKey)
	}
	skE, err := c.curve.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: hpke encap: %w", err)
	}
	dh, err := skE.ECDH(pkR)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: hpke public key", ErrInvalidKey)
	}
	defer clear(dh)
	enc = skE.PublicKey().Bytes()
	kemContext := append(append([]byte(nil), enc...), pkR.Bytes()...)
	prk, err := labeledExtract(c.kemHash, c.kemSuite, nil, "eae_prk", dh)
	if err != nil {
		return nil, nil, err
	}
	defer clear(prk)
	shared, err := labeledExpand(c.kemHash, c.kemSuite, prk, "shared_secret", kemContext, c.nSecret)
	if err != nil {
		return nil, nil, err
	}
	defer clear(shared)
	secret, err := labeledExtract(c.s.newHash, c.hpkeSuite, shared, "secret", nil)
	if err != nil {
		return nil, nil, err
	}
	defer clear(secret)
	key, err := labeledExpand(c.s.newHash, c.hpkeSuite, secret, "key", c.ksContext, c.s.keyLen)
	if err != nil {
		return nil, nil, err
	}
	defer clear(key)
	nonce, err := labeledExpand(c.s.newHash, c.hpkeSuite, secret, "base_nonce", c.ksContext, c.s.nonceLen)
	if err != nil {
		return nil, nil, err
	}
	aead, err := c.s.newAEAD(key)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: hpke aead: %w", err)
	}
	return enc, aead.Seal(nil, nonce, pt, nil), nil
}
