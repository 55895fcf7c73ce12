package mls

import (
	"crypto/hmac"
	"crypto/rand"
	"fmt"

	"sotto/mls/internal/codec"
)

// protectPublic wraps signed content as a PublicMessage, adding the
// membership tag for member senders (RFC 9420 §6.2).
func (s *suite) protectPublic(ac *authenticatedContent, membershipKey []byte, ctx *groupContext) (*publicMessage, error) {
	if ac.wireFormat != wireFormatPublicMessage {
		return nil, fmt.Errorf("%w: wire format is not public", ErrInvalidMessage)
	}
	pm := &publicMessage{content: ac.content, auth: ac.auth}
	if ac.content.sender.typ == senderMember {
		tag, err := ac.membershipTag(s, membershipKey, ctx)
		if err != nil {
			return nil, err
		}
		pm.membershipTag = tag
	}
	return pm, nil
}

// unprotectPublic checks a PublicMessage's membership tag (for member
// senders) and returns its AuthenticatedContent. The signature is left to
// the caller, who knows the sender's key.
func (s *suite) unprotectPublic(pm *publicMessage, membershipKey []byte, ctx *groupContext) (*authenticatedContent, error) {
	ac := &authenticatedContent{wireFormat: wireFormatPublicMessage, content: pm.content, auth: pm.auth}
	if pm.content.sender.typ == senderMember {
		tag, err := ac.membershipTag(s, membershipKey, ctx)
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(tag, pm.membershipTag) {
			return nil, ErrInvalidMAC
		}
	}
	return ac, nil
}

func contentAAD(groupID []byte, epoch uint64, contentType uint8, authData []byte) ([]byte, error) {
	var w codec.Writer
	w.Opaque(groupID)
	w.U64(epoch)
	w.U8(contentType)
	if authData != nil {
		w.Opaque(authData)
	}
	return w.Bytes()
}

func ratchetFor(contentType uint8) ratchetType {
	if contentType == contentApplication {
		return ratchetApplication
	}
	return ratchetHandshake
}

// protectPrivate encrypts signed content as a PrivateMessage
// (RFC 9420 §6.3). padding zero bytes are appended to the content.
func (s *suite) protectPrivate(tree *secretTree, senderDataSecret []byte, ac *authenticatedContent, padding int) (*privateMessage, error) {
	c := &ac.content
	if ac.wireFormat != wireFormatPrivateMessage || c.sender.typ != senderMember {
		return nil, fmt.Errorf("%w: private messages come from members", ErrInvalidMessage)
	}
	if padding < 0 || padding > 1<<16 {
		return nil, fmt.Errorf("%w: padding out of range", ErrInvalidMessage)
	}
	var w codec.Writer
	c.encodeBody(&w)
	ac.auth.encode(&w, c.contentType)
	w.Raw(make([]byte, padding))
	plaintext, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	generation, kn, err := tree.nextKey(c.sender.index, ratchetFor(c.contentType))
	if err != nil {
		return nil, err
	}
	if len(kn.nonce) != s.nonceLen {
		return nil, fmt.Errorf("%w: nonce size", ErrInvalidKey)
	}
	var guard [4]byte
	if _, err := rand.Read(guard[:]); err != nil {
		return nil, fmt.Errorf("mls: reuse guard: %w", err)
	}
	nonce := append([]byte(nil), kn.nonce...)
	for i := range guard {
		nonce[i] ^= guard[i]
	}
	aad, err := contentAAD(c.groupID, c.epoch, c.contentType, c.authenticatedData)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	ct, err := s.seal(kn.key, nonce, aad, plaintext)
	if err != nil {
		return nil, err
	}
	var sd codec.Writer
	sd.U32(c.sender.index)
	sd.U32(generation)
	sd.Raw(guard[:])
	senderData, _ := sd.Bytes()
	sdkn, err := s.senderDataKeyNonce(senderDataSecret, ct)
	if err != nil {
		return nil, err
	}
	sdAAD, err := contentAAD(c.groupID, c.epoch, c.contentType, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	esd, err := s.seal(sdkn.key, sdkn.nonce, sdAAD, senderData)
	if err != nil {
		return nil, err
	}
	return &privateMessage{
		groupID:             c.groupID,
		epoch:               c.epoch,
		contentType:         c.contentType,
		authenticatedData:   c.authenticatedData,
		encryptedSenderData: esd,
		ciphertext:          ct,
	}, nil
}

// unprotectPrivate decrypts a PrivateMessage and returns its
// AuthenticatedContent, using up its key; the signature is left to the
// caller.
func (s *suite) unprotectPrivate(tree *secretTree, senderDataSecret []byte, pm *privateMessage) (*authenticatedContent, error) {
	ac, accept, err := s.openPrivate(tree, senderDataSecret, pm)
	if err != nil {
		return nil, err
	}
	accept(true)
	return ac, nil
}

// openPrivate decrypts a PrivateMessage without changing the tree and
// returns its AuthenticatedContent and a function the caller must call
// once it has checked the rest (the signature): true uses the key up,
// false leaves the tree as it was. On error the tree is unchanged.
func (s *suite) openPrivate(tree *secretTree, senderDataSecret []byte, pm *privateMessage) (*authenticatedContent, func(bool), error) {
	ac, consume, err := s.openPrivateContent(tree, senderDataSecret, pm)
	if err != nil {
		if consume != nil {
			consume(false)
		}
		return nil, nil, err
	}
	return ac, consume, nil
}

func (s *suite) openPrivateContent(tree *secretTree, senderDataSecret []byte, pm *privateMessage) (*authenticatedContent, func(bool), error) {
	sdkn, err := s.senderDataKeyNonce(senderDataSecret, pm.ciphertext)
	if err != nil {
		return nil, nil, err
	}
	sdAAD, err := contentAAD(pm.groupID, pm.epoch, pm.contentType, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	senderData, err := s.open(sdkn.key, sdkn.nonce, sdAAD, pm.encryptedSenderData)
	if err != nil {
		return nil, nil, err
	}
	r := codec.NewReader(senderData)
	leaf := r.U32()
	generation := r.U32()
	guard := r.Raw(4)
	if err := r.Finish(); err != nil {
		return nil, nil, fmt.Errorf("%w: sender data: %w", ErrDecode, err)
	}
	kn, consume, err := tree.keyFor(leaf, ratchetFor(pm.contentType), generation)
	if err != nil {
		return nil, nil, err
	}
	if len(kn.nonce) != s.nonceLen {
		return nil, consume, fmt.Errorf("%w: nonce size", ErrInvalidKey)
	}
	nonce := append([]byte(nil), kn.nonce...)
	for i := range guard {
		nonce[i] ^= guard[i]
	}
	aad, err := contentAAD(pm.groupID, pm.epoch, pm.contentType, pm.authenticatedData)
	if err != nil {
		return nil, consume, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	plaintext, err := s.open(kn.key, nonce, aad, pm.ciphertext)
	if err != nil {
		return nil, consume, err
	}
	ac := &authenticatedContent{
		wireFormat: wireFormatPrivateMessage,
		content: framedContent{
			groupID:           pm.groupID,
			epoch:             pm.epoch,
			sender:            sender{typ: senderMember, index: leaf},
			authenticatedData: pm.authenticatedData,
			contentType:       pm.contentType,
		},
	}
	pr := codec.NewReader(plaintext)
	ac.content.decodeBody(pr)
	ac.auth.decode(pr, pm.contentType)
	if err := pr.Err(); err != nil {
		return nil, consume, fmt.Errorf("%w: private content: %w", ErrDecode, err)
	}
	for _, b := range pr.Raw(pr.Len()) {
		if b != 0 {
			return nil, consume, fmt.Errorf("%w: non-zero padding", ErrDecode)
		}
	}
	return ac, consume, nil
}
