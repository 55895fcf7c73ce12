package mls

import (
	"bytes"
	"fmt"
	"testing"

	"sotto/mls/internal/codec"
	"sotto/mls/internal/vectortest"
)

type messagesVector struct {
	MLSWelcome                     hexb `json:"mls_welcome"`
	MLSGroupInfo                   hexb `json:"mls_group_info"`
	MLSKeyPackage                  hexb `json:"mls_key_package"`
	RatchetTree                    hexb `json:"ratchet_tree"`
	GroupSecrets                   hexb `json:"group_secrets"`
	AddProposal                    hexb `json:"add_proposal"`
	UpdateProposal                 hexb `json:"update_proposal"`
	RemoveProposal                 hexb `json:"remove_proposal"`
	PreSharedKeyProposal           hexb `json:"pre_shared_key_proposal"`
	ReInitProposal                 hexb `json:"re_init_proposal"`
	ExternalInitProposal           hexb `json:"external_init_proposal"`
	GroupContextExtensionsProposal hexb `json:"group_context_extensions_proposal"`
	Commit                         hexb `json:"commit"`
	PublicMessageApplication       hexb `json:"public_message_application"`
	PublicMessageProposal          hexb `json:"public_message_proposal"`
	PublicMessageCommit            hexb `json:"public_message_commit"`
	PrivateMessage                 hexb `json:"private_message"`
}

type codecValue interface {
	encoder
	decoder
}

func roundTrip(t *testing.T, name string, in []byte, v codecValue) bool {
	t.Helper()
	if err := unmarshal(in, v); err != nil {
		t.Errorf("%s: decode: %v", name, err)
		return false
	}
	out, err := marshal(v)
	if err != nil {
		t.Errorf("%s: encode: %v", name, err)
		return false
	}
	if !bytes.Equal(out, in) {
		t.Errorf("%s: re-encoding differs", name)
		return false
	}
	return true
}

func TestMessagesVectors(t *testing.T) {
	var vs []messagesVector
	vectortest.Load(t, "messages.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, fmt.Sprintf("case=%d", i), 0, func(t *testing.T) {
			fields := []struct {
				name string
				in   []byte
				v    codecValue
			}{
				{"mls_welcome", v.MLSWelcome, &mlsMessage{}},
				{"mls_group_info", v.MLSGroupInfo, &mlsMessage{}},
				{"mls_key_package", v.MLSKeyPackage, &mlsMessage{}},
				{"ratchet_tree", v.RatchetTree, &treeNodes{}},
				{"group_secrets", v.GroupSecrets, &groupSecrets{}},
				{"add_proposal", v.AddProposal, proposalBody{&proposal{typ: proposalAdd}}},
				{"update_proposal", v.UpdateProposal, proposalBody{&proposal{typ: proposalUpdate}}},
				{"remove_proposal", v.RemoveProposal, proposalBody{&proposal{typ: proposalRemove}}},
				{"pre_shared_key_proposal", v.PreSharedKeyProposal, proposalBody{&proposal{typ: proposalPSK}}},
				{"re_init_proposal", v.ReInitProposal, proposalBody{&proposal{typ: proposalReInit}}},
				{"external_init_proposal", v.ExternalInitProposal, proposalBody{&proposal{typ: proposalExternalInit}}},
				{"group_context_extensions_proposal", v.GroupContextExtensionsProposal, proposalBody{&proposal{typ: proposalGroupContextExtensions}}},
				{"commit", v.Commit, &commit{}},
				{"public_message_application", v.PublicMessageApplication, &mlsMessage{}},
				{"public_message_proposal", v.PublicMessageProposal, &mlsMessage{}},
				{"public_message_commit", v.PublicMessageCommit, &mlsMessage{}},
				{"private_message", v.PrivateMessage, &mlsMessage{}},
			}
			for _, f := range fields {
				roundTrip(t, f.name, f.in, f.v)
			}
			// KeyPackages are self-signed: check both signatures.
			if m := fields[2].v.(*mlsMessage); m.keyPackage != nil {
				if s, err := CipherSuite(m.keyPackage.cipherSuite).suite(); err == nil {
					if err := m.keyPackage.verify(s); err != nil {
						t.Errorf("key package signature: %v", err)
					}
					if err := m.keyPackage.leafNode.verify(s, nil, 0); err != nil {
						t.Errorf("key package leaf signature: %v", err)
					}
				}
			}
		})
	}
	c.Summary(t, "messages.json")
	if c.Passed != c.Run {
		t.Fatalf("messages.json: %d of %d cases failed", c.Run-c.Passed, c.Run)
	}
}

type deserializationVector struct {
	Header hexb `json:"vlbytes_header"`
	Length int  `json:"length"`
}

func TestDeserializationVectors(t *testing.T) {
	var vs []deserializationVector
	vectortest.Load(t, "deserialization.json", &vs)
	var c vectortest.Counter
	for i, v := range vs {
		c.Case(t, fmt.Sprintf("case=%d", i), 0, func(t *testing.T) {
			r := codec.NewReader(v.Header)
			n := r.VarLen()
			if err := r.Finish(); err != nil || n != v.Length {
				t.Fatalf("header %x: got %d, %v; want %d", v.Header, n, err, v.Length)
			}
			var w codec.Writer
			w.VarLen(v.Length)
			if b, err := w.Bytes(); err != nil || !bytes.Equal(b, v.Header) {
				t.Errorf("length %d: encoded %x, want %x", v.Length, b, v.Header)
			}
		})
	}
	c.Summary(t, "deserialization.json")
}
