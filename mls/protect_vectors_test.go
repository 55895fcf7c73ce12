package mls

import (
	"bytes"
	"errors"
	"testing"

	"sotto/mls/internal/vectortest"
)

type messageProtectionVector struct {
	CipherSuite             uint16 `json:"cipher_suite"`
	GroupID                 hexb   `json:"group_id"`
	Epoch                   uint64 `json:"epoch"`
	TreeHash                hexb   `json:"tree_hash"`
	ConfirmedTranscriptHash hexb   `json:"confirmed_transcript_hash"`
	SignaturePriv           hexb   `json:"signature_priv"`
	SignaturePub            hexb   `json:"signature_pub"`
	EncryptionSecret        hexb   `json:"encryption_secret"`
	SenderDataSecret        hexb   `json:"sender_data_secret"`
	MembershipKey           hexb   `json:"membership_key"`
	Proposal                hexb   `json:"proposal"`
	ProposalPriv            hexb   `json:"proposal_priv"`
	ProposalPub             hexb   `json:"proposal_pub"`
	Commit                  hexb   `json:"commit"`
	CommitPriv              hexb   `json:"commit_priv"`
	CommitPub               hexb   `json:"commit_pub"`
	Application             hexb   `json:"application"`
	ApplicationPriv         hexb   `json:"application_priv"`
}

// protectionFixture holds one vector's group state; the message-protection
// vectors use a two-leaf group with the sender at leaf 1.
type protectionFixture struct {
	t    *testing.T
	s    *suite
	v    *messageProtectionVector
	ctx  groupContext
	tree *secretTree // the sender's
}

func (f *protectionFixture) unprotect(msg []byte) *authenticatedContent {
	f.t.Helper()
	var m mlsMessage
	if err := unmarshal(msg, &m); err != nil {
		f.t.Fatalf("decode: %v", err)
	}
	var ac *authenticatedContent
	var err error
	switch {
	case m.public != nil:
		ac, err = f.s.unprotectPublic(m.public, f.v.MembershipKey, &f.ctx)
	case m.private != nil:
		// The generator encrypts every message with a fresh secret tree,
		// so each one is generation 0: decrypt each with a fresh tree.
		ac, err = f.s.unprotectPrivate(newSecretTree(f.s, f.v.EncryptionSecret, 2), f.v.SenderDataSecret, m.private)
	default:
		f.t.Fatalf("unexpected wire format %d", m.wireFormat)
	}
	if err != nil {
		f.t.Fatalf("unprotect: %v", err)
	}
	if err := ac.verify(f.s, f.v.SignaturePub, &f.ctx); err != nil {
		f.t.Fatalf("signature: %v", err)
	}
	return ac
}

// body returns the encoding of the content's body (the Proposal, Commit or
// application data bytes).
func body(t *testing.T, ac *authenticatedContent) []byte {
	t.Helper()
	if ac.content.contentType == contentApplication {
		return ac.content.applicationData
	}
	var b []byte
	var err error
	if ac.content.contentType == contentProposal {
		b, err = marshal(&ac.content.proposal)
	} else {
		b, err = marshal(&ac.content.commit)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *protectionFixture) protect(wireFormat uint16, contentType uint8, raw []byte) []byte {
	f.t.Helper()
	ac := &authenticatedContent{wireFormat: wireFormat, content: framedContent{
		groupID: f.v.GroupID, epoch: f.v.Epoch, sender: sender{typ: senderMember, index: 1},
		authenticatedData: []byte{}, contentType: contentType,
	}}
	r := unmarshal
	switch contentType {
	case contentApplication:
		ac.content.applicationData = raw
	case contentProposal:
		if err := r(raw, &ac.content.proposal); err != nil {
			f.t.Fatal(err)
		}
	case contentCommit:
		if err := r(raw, &ac.content.commit); err != nil {
			f.t.Fatal(err)
		}
		ac.auth.confirmationTag = make([]byte, f.s.hashLen())
	}
	if err := ac.sign(f.s, f.v.SignaturePriv, &f.ctx); err != nil {
		f.t.Fatal(err)
	}
	m := mlsMessage{version: protocolVersion10, wireFormat: wireFormat}
	var err error
	if wireFormat == wireFormatPublicMessage {
		m.public, err = f.s.protectPublic(ac, f.v.MembershipKey, &f.ctx)
	} else {
		m.private, err = f.s.protectPrivate(f.tree, f.v.SenderDataSecret, ac, 7)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := marshal(&m)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func TestMessageProtectionVectors(t *testing.T) {
	var vs []messageProtectionVector
	vectortest.Load(t, "message-protection.json", &vs)
	var c vectortest.Counter
	for i := range vs {
		v := &vs[i]
		c.Case(t, vectortest.Name(v.CipherSuite, i), v.CipherSuite, func(t *testing.T) {
			s := suiteFor(t, v.CipherSuite)
			f := &protectionFixture{t: t, s: s, v: v,
				ctx: groupContext{version: protocolVersion10, cipherSuite: v.CipherSuite, groupID: v.GroupID,
					epoch: v.Epoch, treeHash: v.TreeHash, confirmedTranscriptHash: v.ConfirmedTranscriptHash},
				tree: newSecretTree(s, v.EncryptionSecret, 2),
			}
			cases := []struct {
				name        string
				msg, want   []byte
				contentType uint8
			}{
				{"proposal_pub", v.ProposalPub, v.Proposal, contentProposal},
				{"proposal_priv", v.ProposalPriv, v.Proposal, contentProposal},
				{"commit_pub", v.CommitPub, v.Commit, contentCommit},
				{"commit_priv", v.CommitPriv, v.Commit, contentCommit},
				{"application_priv", v.ApplicationPriv, v.Application, contentApplication},
			}
			for _, tc := range cases {
				eq(t, tc.name, body(t, f.unprotect(tc.msg)), tc.want)
			}
			// Our own protection round-trips; the sender's ratchet advances
			// (generations 0, 1, ...) and the receiver jumps ahead to match.
			for _, tc := range cases {
				wf := wireFormatPrivateMessage
				if bytes.HasSuffix([]byte(tc.name), []byte("_pub")) {
					wf = wireFormatPublicMessage
				}
				own := f.protect(wf, tc.contentType, tc.want)
				eq(t, tc.name+" round trip", body(t, f.unprotect(own)), tc.want)
			}
			// Tampering is detected.
			var m mlsMessage
			if err := unmarshal(v.ProposalPub, &m); err != nil {
				t.Fatal(err)
			}
			m.public.membershipTag[0] ^= 1
			if _, err := s.unprotectPublic(m.public, v.MembershipKey, &f.ctx); !errors.Is(err, ErrInvalidMAC) {
				t.Errorf("tampered membership tag: got %v", err)
			}
			fresh := newSecretTree(s, v.EncryptionSecret, 2)
			var pm mlsMessage
			if err := unmarshal(v.ApplicationPriv, &pm); err != nil {
				t.Fatal(err)
			}
			pm.private.ciphertext[len(pm.private.ciphertext)-1] ^= 1
			if _, err := s.unprotectPrivate(fresh, v.SenderDataSecret, pm.private); !errors.Is(err, ErrDecrypt) {
				t.Errorf("tampered ciphertext: got %v", err)
			}
		})
	}
	c.Summary(t, "message-protection.json")
}
