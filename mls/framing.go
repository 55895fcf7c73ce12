package mls

import (
	"fmt"

	"sotto/mls/internal/codec"
)

// Content types, sender types and wire formats of RFC 9420 §6.
const (
	contentApplication uint8 = 1
	contentProposal    uint8 = 2
	contentCommit      uint8 = 3

	senderMember            uint8 = 1
	senderExternal          uint8 = 2
	senderNewMemberProposal uint8 = 3
	senderNewMemberCommit   uint8 = 4

	wireFormatPublicMessage  uint16 = 1
	wireFormatPrivateMessage uint16 = 2
	wireFormatWelcome        uint16 = 3
	wireFormatGroupInfo      uint16 = 4
	wireFormatKeyPackage     uint16 = 5
)

// sender is Sender of RFC 9420 §6.
type sender struct {
	typ   uint8
	index uint32 // leaf_index (member) or sender_index (external)
}

func (s *sender) encode(w *codec.Writer) {
	w.U8(s.typ)
	switch s.typ {
	case senderMember, senderExternal:
		w.U32(s.index)
	case senderNewMemberProposal, senderNewMemberCommit:
	default:
		w.SetErr(fmt.Errorf("%w: sender type %d", codec.ErrInvalidValue, s.typ))
	}
}

func (s *sender) decode(r *codec.Reader) {
	s.typ = r.U8()
	switch s.typ {
	case senderMember, senderExternal:
		s.index = r.U32()
	case senderNewMemberProposal, senderNewMemberCommit:
	default:
		invalid(r, "sender type")
	}
}

// framedContent is FramedContent of RFC 9420 §6.
type framedContent struct {
	groupID           []byte
	epoch             uint64
	sender            sender
	authenticatedData []byte
	contentType       uint8
	applicationData   []byte   // application
	proposal          proposal // proposal
	commit            commit   // commit

	// encoded, when set, is this content's encoding, written in place of
	// re-encoding it (see freeze).
	encoded []byte
}

// freeze encodes the content once for the signature, transcript hash,
// membership tag and message that all contain it; the content must not
// change afterwards.
func (c *framedContent) freeze() error {
	c.encoded = nil
	b, err := marshal(c)
	if err != nil {
		return err
	}
	c.encoded = b
	return nil
}

// encodeBody writes the content-type-dependent body.
func (c *framedContent) encodeBody(w *codec.Writer) {
	switch c.contentType {
	case contentApplication:
		w.Opaque(c.applicationData)
	case contentProposal:
		c.proposal.encode(w)
	case contentCommit:
		c.commit.encode(w)
	default:
		w.SetErr(fmt.Errorf("%w: content type %d", codec.ErrInvalidValue, c.contentType))
	}
}

func (c *framedContent) decodeBody(r *codec.Reader) {
	switch c.contentType {
	case contentApplication:
		c.applicationData = r.Opaque()
	case contentProposal:
		c.proposal.decode(r)
	case contentCommit:
		c.commit.decode(r)
	default:
		invalid(r, "content type")
	}
}

func (c *framedContent) encode(w *codec.Writer) {
	if c.encoded != nil {
		w.Raw(c.encoded)
		return
	}
	w.Opaque(c.groupID)
	w.U64(c.epoch)
	c.sender.encode(w)
	w.Opaque(c.authenticatedData)
	w.U8(c.contentType)
	c.encodeBody(w)
}

func (c *framedContent) decode(r *codec.Reader) {
	c.groupID = r.Opaque()
	c.epoch = r.U64()
	c.sender.decode(r)
	c.authenticatedData = r.Opaque()
	c.contentType = r.U8()
	c.decodeBody(r)
}

// authData is FramedContentAuthData of RFC 9420 §6.1.
type authData struct {
	signature       []byte
	confirmationTag []byte // commit only
}

func (a *authData) encode(w *codec.Writer, contentType uint8) {
	w.Opaque(a.signature)
	if contentType == contentCommit {
		w.Opaque(a.confirmationTag)
	}
}

func (a *authData) decode(r *codec.Reader, contentType uint8) {
	a.signature = r.Opaque()
	if contentType == contentCommit {
		a.confirmationTag = r.Opaque()
	}
}

// authenticatedContent is AuthenticatedContent of RFC 9420 §6.1.
type authenticatedContent struct {
	wireFormat uint16
	content    framedContent
	auth       authData
}

func (a *authenticatedContent) encode(w *codec.Writer) {
	w.U16(a.wireFormat)
	a.content.encode(w)
	a.auth.encode(w, a.content.contentType)
}

func (a *authenticatedContent) decode(r *codec.Reader) {
	a.wireFormat = r.U16()
	a.content.decode(r)
	a.auth.decode(r, a.content.contentType)
}

// tbs returns FramedContentTBS; ctx is required for member and
// new_member_commit senders.
func (a *authenticatedContent) tbs(ctx *groupContext) ([]byte, error) {
	var w codec.Writer
	w.U16(protocolVersion10)
	w.U16(a.wireFormat)
	a.content.encode(&w)
	switch a.content.sender.typ {
	case senderMember, senderNewMemberCommit:
		if ctx == nil {
			return nil, fmt.Errorf("%w: group context required", ErrInvalidMessage)
		}
		ctx.encode(&w)
	}
	return w.Bytes()
}

func (a *authenticatedContent) sign(s *suite, priv []byte, ctx *groupContext) error {
	k, err := s.newSigner(priv)
	if err != nil {
		return err
	}
	return a.signWith(s, k, ctx)
}

func (a *authenticatedContent) signWith(s *suite, k *signer, ctx *groupContext) error {
	tbs, err := a.tbs(ctx)
	if err != nil {
		return err
	}
	sig, err := s.signWith(k, "FramedContentTBS", tbs)
	if err != nil {
		return err
	}
	a.auth.signature = sig
	return nil
}

func (a *authenticatedContent) verify(s *suite, pub []byte, ctx *groupContext) error {
	tbs, err := a.tbs(ctx)
	if err != nil {
		return err
	}
	return s.verifyWithLabel(pub, "FramedContentTBS", tbs, a.auth.signature)
}

// membershipTag computes MAC(membership_key, AuthenticatedContentTBM).
func (a *authenticatedContent) membershipTag(s *suite, membershipKey []byte, ctx *groupContext) ([]byte, error) {
	tbs, err := a.tbs(ctx)
	if err != nil {
		return nil, err
	}
	var w codec.Writer
	w.Raw(tbs)
	a.auth.encode(&w, a.content.contentType)
	tbm, err := w.Bytes()
	if err != nil {
		return nil, err
	}
	return s.mac(membershipKey, tbm), nil
}

// publicMessage is PublicMessage of RFC 9420 §6.2.
type publicMessage struct {
	content       framedContent
	auth          authData
	membershipTag []byte // member senders only
}

func (p *publicMessage) encode(w *codec.Writer) {
	p.content.encode(w)
	p.auth.encode(w, p.content.contentType)
	if p.content.sender.typ == senderMember {
		w.Opaque(p.membershipTag)
	}
}

func (p *publicMessage) decode(r *codec.Reader) {
	p.content.decode(r)
	p.auth.decode(r, p.content.contentType)
	if p.content.sender.typ == senderMember {
		p.membershipTag = r.Opaque()
	}
}

// privateMessage is PrivateMessage of RFC 9420 §6.3.
type privateMessage struct {
	groupID             []byte
	epoch               uint64
	contentType         uint8
	authenticatedData   []byte
	encryptedSenderData []byte
	ciphertext          []byte
}

func (p *privateMessage) encode(w *codec.Writer) {
	w.Opaque(p.groupID)
	w.U64(p.epoch)
	w.U8(p.contentType)
	w.Opaque(p.authenticatedData)
	w.Opaque(p.encryptedSenderData)
	w.Opaque(p.ciphertext)
}

func (p *privateMessage) decode(r *codec.Reader) {
	p.groupID = r.Opaque()
	p.epoch = r.U64()
	p.contentType = r.U8()
	if p.contentType < contentApplication || p.contentType > contentCommit {
		invalid(r, "content type")
	}
	p.authenticatedData = r.Opaque()
	p.encryptedSenderData = r.Opaque()
	p.ciphertext = r.Opaque()
}

// mlsMessage is MLSMessage of RFC 9420 §6.
type mlsMessage struct {
	version    uint16
	wireFormat uint16
	public     *publicMessage
	private    *privateMessage
	welcome    *welcome
	groupInfo  *groupInfo
	keyPackage *keyPackage
}

func (m *mlsMessage) encode(w *codec.Writer) {
	w.U16(m.version)
	w.U16(m.wireFormat)
	switch {
	case m.wireFormat == wireFormatPublicMessage && m.public != nil:
		m.public.encode(w)
	case m.wireFormat == wireFormatPrivateMessage && m.private != nil:
		m.private.encode(w)
	case m.wireFormat == wireFormatWelcome && m.welcome != nil:
		m.welcome.encode(w)
	case m.wireFormat == wireFormatGroupInfo && m.groupInfo != nil:
		m.groupInfo.encode(w)
	case m.wireFormat == wireFormatKeyPackage && m.keyPackage != nil:
		m.keyPackage.encode(w)
	default:
		w.SetErr(fmt.Errorf("%w: wire format %d", codec.ErrInvalidValue, m.wireFormat))
	}
}

func (m *mlsMessage) decode(r *codec.Reader) {
	m.version = r.U16()
	if r.Err() == nil && m.version != protocolVersion10 {
		invalid(r, "protocol version")
		return
	}
	m.wireFormat = r.U16()
	switch m.wireFormat {
	case wireFormatPublicMessage:
		m.public = new(publicMessage)
		m.public.decode(r)
	case wireFormatPrivateMessage:
		m.private = new(privateMessage)
		m.private.decode(r)
	case wireFormatWelcome:
		m.welcome = new(welcome)
		m.welcome.decode(r)
	case wireFormatGroupInfo:
		m.groupInfo = new(groupInfo)
		m.groupInfo.decode(r)
	case wireFormatKeyPackage:
		m.keyPackage = new(keyPackage)
		m.keyPackage.decode(r)
	default:
		invalid(r, "wire format")
	}
}
