package mls

import (
	"bytes"
	"errors"
	"fmt"

	"sotto/mls/internal/codec"
)

// ErrNotExternalSender reports a signature key that the group's
// external_senders extension does not list.
var ErrNotExternalSender = errors.New("mls: not an external sender of the group")

// externalSender is ExternalSender of RFC 9420 §12.1.8.1.
type externalSender struct {
	signatureKey []byte
	credential   credential
}

func (e *externalSender) encode(w *codec.Writer) {
	w.Opaque(e.signatureKey)
	e.credential.encode(w)
}

func (e *externalSender) decode(r *codec.Reader) {
	e.signatureKey = r.Opaque()
	e.credential.decode(r)
}

// parseExternalSenders decodes the value of an external_senders
// extension.
func parseExternalSenders(data []byte) ([]externalSender, error) {
	var out []externalSender
	r := codec.NewReader(data)
	r.Elements(func(r *codec.Reader) {
		var e externalSender
		e.decode(r)
		out = append(out, e)
	})
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: external senders: %w", ErrDecode, err)
	}
	return out, nil
}

func encodeExternalSenders(senders []externalSender) ([]byte, error) {
	var w codec.Writer
	w.Vector(func(w *codec.Writer) {
		for i := range senders {
			senders[i].encode(w)
		}
	})
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: external senders: %w", err)
	}
	return b, nil
}

// NewExternalSender describes the external sender with the given basic
// identity and signature private key (its public key is derived).
func NewExternalSender(cs CipherSuite, identity, signatureKey []byte) (ExternalSender, error) {
	s, err := cs.suite()
	if err != nil {
		return ExternalSender{}, err
	}
	pub, err := s.signaturePublicKey(signatureKey)
	if err != nil {
		return ExternalSender{}, err
	}
	return ExternalSender{SignatureKey: pub, Identity: bytes.Clone(identity)}, nil
}

func (e ExternalSender) internal() externalSender {
	return externalSender{signatureKey: bytes.Clone(e.SignatureKey),
		credential: credential{typ: credentialBasic, identity: bytes.Clone(e.Identity)}}
}

// MarshalBinary encodes the sender as an ExternalSender struct of RFC
// 9420 §12.1.8.1 (signature key and basic credential), the form the
// interop runner passes from CreateExternalSigner to AddExternalSigner.
func (e ExternalSender) MarshalBinary() ([]byte, error) {
	in := e.internal()
	b, err := marshal(&in)
	if err != nil {
		return nil, fmt.Errorf("mls: external sender: %w", err)
	}
	return b, nil
}

// UnmarshalExternalSender decodes an ExternalSender struct with a basic
// credential.
func UnmarshalExternalSender(b []byte) (ExternalSender, error) {
	var e externalSender
	if err := unmarshal(b, &e); err != nil {
		return ExternalSender{}, err
	}
	if e.credential.typ != credentialBasic {
		return ExternalSender{}, fmt.Errorf("%w: external sender credential type %d", ErrInvalidMessage, e.credential.typ)
	}
	return ExternalSender{SignatureKey: bytes.Clone(e.signatureKey), Identity: bytes.Clone(e.credential.identity)}, nil
}

// ExternalSenders lists the external_senders extension of the current
// epoch in index order (nil when the group has none); a sender's index
// is what its proposals name. Senders with a non-basic credential are
// listed with a nil Identity.
func (g *Group) ExternalSenders() ([]ExternalSender, error) {
	data, ok := findExtension(g.st.ctx.extensions, extExternalSenders)
	if !ok {
		return nil, nil
	}
	senders, err := parseExternalSenders(data)
	if err != nil {
		return nil, err
	}
	out := make([]ExternalSender, 0, len(senders))
	for _, e := range senders {
		es := ExternalSender{SignatureKey: bytes.Clone(e.signatureKey)}
		if e.credential.typ == credentialBasic {
			es.Identity = bytes.Clone(e.credential.identity)
		}
		out = append(out, es)
	}
	return out, nil
}

// ExtensionsWithExternalSender returns the current group context
// extensions with es appended to the external_senders extension (added
// if missing), for CommitOptions.Extensions or
// ProposeGroupContextExtensions. A signature key already listed is
// refused.
func (g *Group) ExtensionsWithExternalSender(es ExternalSender) ([]Extension, error) {
	if len(es.SignatureKey) == 0 {
		return nil, fmt.Errorf("%w: external sender without a signature key", ErrInvalidKey)
	}
	var senders []externalSender
	if data, ok := findExtension(g.st.ctx.extensions, extExternalSenders); ok {
		var err error
		if senders, err = parseExternalSenders(data); err != nil {
			return nil, err
		}
	}
	for _, e := range senders {
		if bytes.Equal(e.signatureKey, es.SignatureKey) {
			return nil, fmt.Errorf("%w: external sender already listed", ErrInvalidMessage)
		}
	}
	data, err := encodeExternalSenders(append(senders, es.internal()))
	if err != nil {
		return nil, err
	}
	exts := g.Extensions()
	for i := range exts {
		if exts[i].Type == ExtensionExternalSenders {
			exts[i].Data = data
			return exts, nil
		}
	}
	return append(exts, Extension{Type: ExtensionExternalSenders, Data: data}), nil
}

// ProposeExternalSender proposes adding es to the group's external
// senders: a GroupContextExtensions proposal (RFC 9420 §12.1.7) keeping
// the other extensions. Once committed, es may send the proposals of
// §12.1.8 with the index ExternalSenders reports (NewExternalProposer
// finds it). This is the interop runner's AddExternalSigner.
func (g *Group) ProposeExternalSender(es ExternalSender) ([]byte, error) {
	exts, err := g.ExtensionsWithExternalSender(es)
	if err != nil {
		return nil, err
	}
	return g.ProposeGroupContextExtensions(exts)
}

// checkExternalSenders checks an external_senders extension among exts
// that a group context is about to carry: it must decode, and the
// application's CredentialValidator vets each sender's credential with
// its signature key (RFC 9420 §5.3.1).
func (g *groupState) checkExternalSenders(exts []extension) error {
	data, ok := findExtension(exts, extExternalSenders)
	if !ok {
		return nil
	}
	senders, err := parseExternalSenders(data)
	if err != nil {
		return err
	}
	if g.validator == nil {
		return nil
	}
	for i := range senders {
		e := &senders[i]
		if err := g.validator.ValidateCredential(nil, publicCredential(&e.credential), bytes.Clone(e.signatureKey)); err != nil {
			return fmt.Errorf("%w: external sender %d: %w", ErrCredentialRejected, i, err)
		}
	}
	return nil
}

// externalSendersChanged reports whether next's external_senders differ
// from prev's, so their credentials need vetting.
func externalSendersChanged(prev, next []extension) bool {
	a, okA := findExtension(prev, extExternalSenders)
	b, okB := findExtension(next, extExternalSenders)
	return okA != okB || !bytes.Equal(a, b)
}

// SenderType is the kind of sender of a handled message (RFC 9420 §6).
type SenderType uint8

// Sender types.
const (
	SenderMember            SenderType = SenderType(senderMember)
	SenderExternal          SenderType = SenderType(senderExternal)
	SenderNewMemberProposal SenderType = SenderType(senderNewMemberProposal)
	SenderNewMemberCommit   SenderType = SenderType(senderNewMemberCommit)
)
