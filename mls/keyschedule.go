package mls

import (
	"fmt"

	"sotto/mls/internal/codec"
)

// pskInput is one pre-shared key and its identifier, in the order the
// proposals list them.
type pskInput struct {
	id  preSharedKeyID
	psk []byte
}

// pskSecret computes psk_secret of RFC 9420 §8.4; with no PSKs it is the
// all-zero string of length Nh.
func (s *suite) pskSecret(psks []pskInput) ([]byte, error) {
	nh := s.hashLen()
	secret := make([]byte, nh)
	if len(psks) > 0xffff {
		return nil, fmt.Errorf("%w: too many psks", ErrInvalidMessage)
	}
	for i, p := range psks {
		extracted := s.extract(nil, p.psk)
		var w codec.Writer
		p.id.encode(&w)
		w.U16(uint16(i))
		w.U16(uint16(len(psks)))
		label, err := w.Bytes()
		if err != nil {
			return nil, fmt.Errorf("%w: psk label: %w", ErrDecode, err)
		}
		input, err := s.expandWithLabel(extracted, "derived psk", label, nh)
		if err != nil {
			return nil, err
		}
		secret = s.extract(input, secret)
	}
	return secret, nil
}

// epochSecrets holds the secrets derived from one epoch_secret
// (RFC 9420 §8, Table 4).
type epochSecrets struct {
	joinerSecret       []byte
	welcomeSecret      []byte
	epochSecret        []byte
	senderDataSecret   []byte
	encryptionSecret   []byte
	exporterSecret     []byte
	epochAuthenticator []byte
	externalSecret     []byte
	confirmationKey    []byte
	membershipKey      []byte
	resumptionPSK      []byte
	initSecret         []byte
}

// joinerSecret computes joiner_secret from the previous init_secret, the
// commit_secret and the new GroupContext.
func (s *suite) joinerSecret(initSecret, commitSecret, groupContext []byte) ([]byte, error) {
	if commitSecret == nil {
		commitSecret = make([]byte, s.hashLen())
	}
	return s.expandWithLabel(s.extract(initSecret, commitSecret), "joiner", groupContext, s.hashLen())
}

// welcomeSecretFrom returns the intermediate secret and welcome_secret
// derived from joiner_secret and psk_secret.
func (s *suite) memberSecret(joinerSecret, pskSecret []byte) (member, welcomeSecret []byte, err error) {
	if pskSecret == nil {
		pskSecret = make([]byte, s.hashLen())
	}
	member = s.extract(joinerSecret, pskSecret)
	welcomeSecret, err = s.deriveSecret(member, "welcome")
	return member, welcomeSecret, err
}

// epochFromJoiner completes the key schedule from joiner_secret.
func (s *suite) epochFromJoiner(joinerSecret, pskSecret, groupContext []byte) (*epochSecrets, error) {
	member, welcomeSecret, err := s.memberSecret(joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	epoch, err := s.expandWithLabel(member, "epoch", groupContext, s.hashLen())
	if err != nil {
		return nil, err
	}
	e := &epochSecrets{joinerSecret: joinerSecret, welcomeSecret: welcomeSecret, epochSecret: epoch}
	for _, d := range []struct {
		label string
		dst   *[]byte
	}{
		{"sender data", &e.senderDataSecret},
		{"encryption", &e.encryptionSecret},
		{"exporter", &e.exporterSecret},
		{"authentication", &e.epochAuthenticator},
		{"external", &e.externalSecret},
		{"confirm", &e.confirmationKey},
		{"membership", &e.membershipKey},
		{"resumption", &e.resumptionPSK},
		{"init", &e.initSecret},
	} {
		if *d.dst, err = s.deriveSecret(epoch, d.label); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// epochFromInit runs the whole key schedule for one epoch.
func (s *suite) epochFromInit(initSecret, commitSecret, pskSecret, groupContext []byte) (*epochSecrets, error) {
	joiner, err := s.joinerSecret(initSecret, commitSecret, groupContext)
	if err != nil {
		return nil, err
	}
	return s.epochFromJoiner(joiner, pskSecret, groupContext)
}

// exporter is MLS-Exporter of RFC 9420 §8.5.
func (s *suite) exporter(exporterSecret []byte, label string, context []byte, length int) ([]byte, error) {
	d, err := s.deriveSecret(exporterSecret, label)
	if err != nil {
		return nil, err
	}
	return s.expandWithLabel(d, "exported", s.hash(context), length)
}

// externalPub returns the HPKE public key derived from external_secret.
func (s *suite) externalPub(externalSecret []byte) ([]byte, error) {
	_, pub, err := s.deriveKeyPair(externalSecret)
	return pub, err
}

// welcomeKeyNonce derives the AEAD key and nonce protecting GroupInfo in a
// Welcome (RFC 9420 §12.4.3.1).
func (s *suite) welcomeKeyNonce(welcomeSecret []byte) (key, nonce []byte, err error) {
	if key, err = s.expandWithLabel(welcomeSecret, "key", nil, s.keyLen); err != nil {
		return nil, nil, err
	}
	nonce, err = s.expandWithLabel(welcomeSecret, "nonce", nil, s.nonceLen)
	return key, nonce, err
}
