package mls

import (
	"fmt"

	"sotto/mls/internal/codec"
)

// confirmedTranscriptHash computes the new confirmed transcript hash from
// the previous interim hash and a commit's AuthenticatedContent
// (RFC 9420 §8.2): the input is wire_format || content || signature.
func (s *suite) confirmedTranscriptHash(interimBefore []byte, ac *authenticatedContent) ([]byte, error) {
	var w codec.Writer
	w.Raw(interimBefore)
	w.U16(ac.wireFormat)
	ac.content.encode(&w)
	w.Opaque(ac.auth.signature)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return s.hash(b), nil
}

// interimTranscriptHash computes the interim transcript hash from the
// confirmed hash and the confirmation tag.
func (s *suite) interimTranscriptHash(confirmed, confirmationTag []byte) ([]byte, error) {
	var w codec.Writer
	w.Raw(confirmed)
	w.Opaque(confirmationTag)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecode, err)
	}
	return s.hash(b), nil
}
