package org

import (
	"crypto/ed25519"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// fuzzKey is fixed so that seeds signed with it stay valid across runs.
var fuzzKey = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))

func seedDocuments(f *testing.F) int {
	docs := []*wire.OrgDocument{
		mustSign(f, fuzzKey, wire.OrgDocumentKind_ORG_NOTICE, &Notice{Seq: 3, IssuedMs: now.UnixMilli(), Text: "maintenance tonight"}),
		mustSign(f, fuzzKey, wire.OrgDocumentKind_ORG_POLICY, &Policy{Version: 4, FailedUnlockLimit: 5, CallsDisabled: true}),
		mustSign(f, fuzzKey, wire.OrgDocumentKind_ORG_WIPE, sampleWipe()),
		mustSign(f, fuzzKey, wire.OrgDocumentKind_ORG_CERTIFICATE, &Certificate{Username: "bob", IdentityKey: []byte{5, 1, 2}, IssuedMs: 1, ExpiresMs: 2}),
		mustSign(f, fuzzKey, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, &wire.MemberAccess{Version: 2, IssuedMs: 1, AccessKey: make([]byte, wire.AccessKeySize)}),
	}
	for _, d := range docs {
		b, err := proto.Marshal(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	return len(docs)
}

// FuzzOpenDocument feeds envelope contents through the decoder and every
// verifier: nothing panics, and whatever opens was signed by the key.
func FuzzOpenDocument(f *testing.F) {
	if seedDocuments(f) == 0 {
		f.Fatal("no seeds")
	}
	pub := pubOf(fuzzKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := DecodeDocument(b)
		if err != nil {
			if !errors.Is(err, ErrBadDocument) && !errors.Is(err, ErrWrongKind) {
				t.Fatalf("unexpected error type: %v", err)
			}
			return
		}
		var opened bool
		switch d.Kind {
		case wire.OrgDocumentKind_ORG_NOTICE:
			_, err = OpenNotice(pub, d)
		case wire.OrgDocumentKind_ORG_POLICY:
			_, err = OpenPolicy(pub, d)
		case wire.OrgDocumentKind_ORG_WIPE:
			var w *WipeOrder
			if w, err = OpenWipe(pub, d); err == nil {
				_ = w.Targets(Enrollment{Username: w.Username}, now)
			}
		case wire.OrgDocumentKind_ORG_CERTIFICATE:
			_, err = OpenCertificate(pub, d)
		case wire.OrgDocumentKind_ORG_MEMBER_ACCESS:
			var m *wire.MemberAccess
			if m, err = OpenMemberAccess(pub, d); err == nil && (m.Version == 0 || len(m.AccessKey) != wire.AccessKeySize) {
				t.Fatalf("opened an invalid member access document: %v", m)
			}
		default:
			t.Fatalf("decoded a document of kind %v, which no device opens", d.Kind)
		}
		opened = err == nil
		if opened {
			if Verify(pub, d.Kind, d) != nil {
				t.Fatal("opened a document whose signature does not verify")
			}
		}
	})
}

// FuzzBodies decodes raw bodies of each kind, signed with the key, so the
// fuzzer reaches the field checks behind the signature.
func FuzzBodies(f *testing.F) {
	n := 0
	for _, m := range []proto.Message{&Notice{Seq: 1, Text: "x"}, &Policy{Version: 1}, sampleWipe(), &Certificate{Username: "u", IdentityKey: []byte{1}, ExpiresMs: 5}, &wire.MemberAccess{Version: 1, AccessKey: make([]byte, wire.AccessKeySize)},
		&ReleaseApproval{Version: "v1.0.0", ManifestHashes: [][]byte{make([]byte, 32)}, WitnessKey: make([]byte, 32), IssuedMs: 1}} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		for _, k := range []uint8{1, 2, 3, 4, 6, 140} {
			f.Add(k, b)
			n++
		}
	}
	if n == 0 {
		f.Fatal("no seeds")
	}
	pub := pubOf(fuzzKey)
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		k := wire.OrgDocumentKind(kind % 7)
		if kind >= 140 {
			k = wire.OrgDocumentKind_ORG_RELEASE_APPROVAL
		}
		msg, err := signedMessage(k, body)
		if err != nil {
			return
		}
		d := &wire.OrgDocument{Kind: k, Body: body, Signature: ed25519.Sign(fuzzKey, msg)}
		_, _ = OpenNotice(pub, d)
		_, _ = OpenPolicy(pub, d)
		_, _ = OpenWipe(pub, d)
		_, _ = OpenCertificate(pub, d)
		_, _ = OpenMemberAccess(pub, d)
		_, _ = OpenReleaseApproval(pub, d)
	})
}

// FuzzOpenKey parses exported keys.
func FuzzOpenKey(f *testing.F) {
	sealed, err := SealKey(fuzzKey, []byte("passphrase!"))
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{sealed, exportPrefix, "", sealed[:len(sealed)-3]}
	for _, s := range seeds {
		f.Add(s)
	}
	if len(seeds) == 0 {
		f.Fatal("no seeds")
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := SealedPublicKey(s); err != nil && !errors.Is(err, ErrBadKey) {
			t.Fatalf("unexpected error: %v", err)
		}
		// Opening runs Argon2id: only for well-formed inputs. Whatever
		// opens is the key the export names.
		if _, err := decodeSealed(s); err == nil {
			k, err := OpenKey(s, []byte("passphrase!"))
			if err == nil {
				pub, _ := SealedPublicKey(s)
				if !pubOf(k).Equal(pub) {
					t.Fatal("opened a key other than the one the export names")
				}
			}
		}
	})
}
