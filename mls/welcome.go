package mls

import (
	"bytes"
	"crypto/hpke"
	"fmt"

	"sotto/mls/internal/codec"
)

// groupInfo is GroupInfo of RFC 9420 §12.4.3.
type groupInfo struct {
	groupContext    groupContext
	extensions      []extension
	confirmationTag []byte
	signer          uint32
	signature       []byte
}

func (g *groupInfo) encodeTBS(w *codec.Writer) {
	g.groupContext.encode(w)
	encodeExtensions(w, g.extensions)
	w.Opaque(g.confirmationTag)
	w.U32(g.signer)
}

func (g *groupInfo) encode(w *codec.Writer) {
	g.encodeTBS(w)
	w.Opaque(g.signature)
}

func (g *groupInfo) decode(r *codec.Reader) {
	g.groupContext.decode(r)
	g.extensions = decodeExtensions(r)
	g.confirmationTag = r.Opaque()
	g.signer = r.U32()
	g.signature = r.Opaque()
}

func (g *groupInfo) tbs() ([]byte, error) {
	var w codec.Writer
	g.encodeTBS(&w)
	return w.Bytes()
}

// groupSecrets is GroupSecrets of RFC 9420 §12.4.3.
type groupSecrets struct {
	joinerSecret []byte
	pathSecret   []byte // nil when absent
	hasPath      bool
	psks         []preSharedKeyID
}

func (g *groupSecrets) encode(w *codec.Writer) {
	w.Opaque(g.joinerSecret)
	w.Optional(g.hasPath, func(w *codec.Writer) { w.Opaque(g.pathSecret) })
	w.Vector(func(w *codec.Writer) {
		for i := range g.psks {
			g.psks[i].encode(w)
		}
	})
}

func (g *groupSecrets) decode(r *codec.Reader) {
	g.joinerSecret = r.Opaque()
	g.hasPath = r.Optional(func(r *codec.Reader) { g.pathSecret = r.Opaque() })
	r.Elements(func(r *codec.Reader) {
		var p preSharedKeyID
		p.decode(r)
		g.psks = append(g.psks, p)
	})
}

// encryptedGroupSecrets is EncryptedGroupSecrets of RFC 9420 §12.4.3.
type encryptedGroupSecrets struct {
	newMember []byte
	secrets   hpkeCiphertext
}

// welcome is Welcome of RFC 9420 §12.4.3.
type welcome struct {
	cipherSuite        uint16
	secrets            []encryptedGroupSecrets
	encryptedGroupInfo []byte
}

func (m *welcome) encode(w *codec.Writer) {
	w.U16(m.cipherSuite)
	w.Vector(func(w *codec.Writer) {
		for i := range m.secrets {
			w.Opaque(m.secrets[i].newMember)
			m.secrets[i].secrets.encode(w)
		}
	})
	w.Opaque(m.encryptedGroupInfo)
}

func (m *welcome) decode(r *codec.Reader) {
	m.cipherSuite = r.U16()
	r.Elements(func(r *codec.Reader) {
		var e encryptedGroupSecrets
		e.newMember = r.Opaque()
		e.secrets.decode(r)
		m.secrets = append(m.secrets, e)
	})
	m.encryptedGroupInfo = r.Opaque()
}

// joinedWelcome is what a new member learns from a Welcome.
type joinedWelcome struct {
	secrets   groupSecrets
	info      groupInfo
	infoBytes []byte
	epoch     *epochSecrets
	ctxBytes  []byte
}

// openWelcome decrypts the GroupSecrets addressed to kp and the GroupInfo
// (RFC 9420 §12.4.3.1), then runs the key schedule and checks the
// GroupInfo's confirmation tag. psks resolves the PSKs the secrets name.
// The GroupInfo signature is checked by the caller, who must first find
// the signer's key in the ratchet tree.
func (s *suite) openWelcome(w *welcome, kp *keyPackage, initPriv hpke.PrivateKey, psks func(id *preSharedKeyID) ([]byte, error)) (*joinedWelcome, error) {
	if CipherSuite(w.cipherSuite) != s.id || CipherSuite(kp.cipherSuite) != s.id {
		return nil, fmt.Errorf("%w: welcome cipher suite mismatch", ErrInvalidMessage)
	}
	ref, err := kp.ref(s)
	if err != nil {
		return nil, err
	}
	var egs *encryptedGroupSecrets
	for i := range w.secrets {
		if bytes.Equal(w.secrets[i].newMember, ref) {
			egs = &w.secrets[i]
			break
		}
	}
	if egs == nil {
		return nil, fmt.Errorf("%w: welcome has no secrets for this key package", ErrInvalidMessage)
	}
	pt, err := s.decryptWithLabel(initPriv, "Welcome", w.encryptedGroupInfo, egs.secrets.kemOutput, egs.secrets.ciphertext)
	if err != nil {
		return nil, err
	}
	j := &joinedWelcome{}
	if err := unmarshal(pt, &j.secrets); err != nil {
		return nil, err
	}
	var inputs []pskInput
	for i := range j.secrets.psks {
		id := &j.secrets.psks[i]
		if psks == nil {
			return nil, fmt.Errorf("%w: unknown pre-shared key", ErrInvalidMessage)
		}
		if len(id.pskNonce) != s.hashLen() {
			// RFC 9420 §8.4: KDF.Nh of the group being joined.
			return nil, fmt.Errorf("%w: pre-shared key nonce is %d bytes, want %d", ErrInvalidMessage, len(id.pskNonce), s.hashLen())
		}
		psk, err := psks(id)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, pskInput{id: *id, psk: psk})
	}
	pskSecret, err := s.pskSecret(inputs)
	if err != nil {
		return nil, err
	}
	_, welcomeSecret, err := s.memberSecret(j.secrets.joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	key, nonce, err := s.welcomeKeyNonce(welcomeSecret)
	if err != nil {
		return nil, err
	}
	j.infoBytes, err = s.open(key, nonce, nil, w.encryptedGroupInfo)
	if err != nil {
		return nil, err
	}
	if err := unmarshal(j.infoBytes, &j.info); err != nil {
		return nil, err
	}
	gc := &j.info.groupContext
	if gc.version != protocolVersion10 || CipherSuite(gc.cipherSuite) != s.id {
		return nil, fmt.Errorf("%w: group info version or suite mismatch", ErrInvalidMessage)
	}
	if j.ctxBytes, err = marshal(gc); err != nil {
		return nil, err
	}
	if j.epoch, err = s.epochFromJoiner(j.secrets.joinerSecret, pskSecret, j.ctxBytes); err != nil {
		return nil, err
	}
	if !s.verifyMAC(j.epoch.confirmationKey, gc.confirmedTranscriptHash, j.info.confirmationTag) {
		return nil, fmt.Errorf("%w: group info confirmation tag", ErrInvalidMAC)
	}
	return j, nil
}

// verifyGroupInfo checks the GroupInfo signature with the signer's key.
func (s *suite) verifyGroupInfo(g *groupInfo, signerKey []byte) error {
	tbs, err := g.tbs()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return s.verifyWithLabel(signerKey, "GroupInfoTBS", tbs, g.signature)
}
