package mls

import (
	"testing"

	"sotto/mls/internal/vectortest"
)

type transcriptVector struct {
	CipherSuite                  uint16 `json:"cipher_suite"`
	ConfirmationKey              hexb   `json:"confirmation_key"`
	AuthenticatedContent         hexb   `json:"authenticated_content"`
	InterimTranscriptHashBefore  hexb   `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter hexb   `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   hexb   `json:"interim_transcript_hash_after"`
}

func TestTranscriptHashVectors(t *testing.T) {
	var vs []transcriptVector
	vectortest.Load(t, "transcript-hashes.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			var ac authenticatedContent
			if !roundTrip(t, "authenticated_content", v.AuthenticatedContent, &ac) {
				return
			}
			if ac.content.contentType != contentCommit {
				t.Fatalf("content type %d, want commit", ac.content.contentType)
			}
			if !s.verifyMAC(v.ConfirmationKey, v.ConfirmedTranscriptHashAfter, ac.auth.confirmationTag) {
				t.Errorf("suite %d: confirmation tag does not verify", v.CipherSuite)
			}
			confirmed, err := s.confirmedTranscriptHash(v.InterimTranscriptHashBefore, &ac)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "confirmed_transcript_hash_after", confirmed, v.ConfirmedTranscriptHashAfter)
			interim, err := s.interimTranscriptHash(confirmed, ac.auth.confirmationTag)
			if err != nil {
				t.Fatal(err)
			}
			eq(t, "interim_transcript_hash_after", interim, v.InterimTranscriptHashAfter)
		})
	}
	c.Summary(t, "transcript-hashes.json")
}
