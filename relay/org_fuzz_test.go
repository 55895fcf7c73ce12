package relay

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// orgFuzzKey is a fixed org key, so that the fuzzer's corpus stays valid.
var orgFuzzKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x42}, ed25519.SeedSize))

func signedOrgDocument(kind wire.OrgDocumentKind, body []byte) *wire.OrgDocument {
	return &wire.OrgDocument{Kind: kind, Body: body, Signature: ed25519.Sign(orgFuzzKey, append([]byte(orgDomains[kind]), body...))}
}

// FuzzOrgPublish feeds OrgPublishRequest encodings, as a device sends
// them, to the relay's check: it accepts exactly the documents the org key
// signed, for a known kind, within the size limit, and refuses the rest
// with ErrBadRequest or ErrForbidden. What it accepts it keeps as a
// document that decodes back to the same kind, body and signature.
func FuzzOrgPublish(f *testing.F) {
	pub := orgFuzzKey.Public().(ed25519.PublicKey)
	var accepted int
	for _, r := range []*wire.OrgPublishRequest{
		{Document: signedOrgDocument(wire.OrgDocumentKind_ORG_POLICY, []byte("\x08\x03\x10\x0a"))},
		{Document: signedOrgDocument(wire.OrgDocumentKind_ORG_NOTICE, []byte("\x0a\x05hello"))},
		{Document: signedOrgDocument(wire.OrgDocumentKind_ORG_CERTIFICATE, []byte("\x0a\x05alice")), Username: "alice"},
		{Document: signedOrgDocument(wire.OrgDocumentKind_ORG_WIPE, []byte("\x0a\x05alice\x10\x02")), Username: "alice", DeviceId: 2},
		{Document: signedOrgDocument(wire.OrgDocumentKind_ORG_POLICY, bytes.Repeat([]byte{1}, maxOrgDocument))},
		// Refused: too large, unknown kind, signed for another kind, no document.
		{Document: signedOrgDocument(wire.OrgDocumentKind_ORG_POLICY, bytes.Repeat([]byte{1}, maxOrgDocument+1))},
		{Document: &wire.OrgDocument{Kind: 99, Body: []byte("x"), Signature: make([]byte, 64)}},
		{Document: &wire.OrgDocument{Kind: wire.OrgDocumentKind_ORG_WIPE, Body: []byte("\x08\x03\x10\x0a"),
			Signature: signedOrgDocument(wire.OrgDocumentKind_ORG_POLICY, []byte("\x08\x03\x10\x0a")).Signature}},
		{Username: "alice"},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := checkOrgDocument(pub, r.Document); err == nil {
			accepted++
		}
		f.Add(b)
	}
	if accepted != 5 {
		f.Fatalf("%d seeds accepted, want 5", accepted)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wire.OrgPublishRequest
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		doc := r.GetDocument()
		content, err := checkOrgDocument(pub, doc)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrForbidden) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		domain, ok := orgDomains[doc.Kind]
		if !ok || len(doc.Body) > maxOrgDocument || !ed25519.Verify(pub, append([]byte(domain), doc.Body...), doc.Signature) {
			t.Fatalf("accepted a document the org key did not sign for kind %v", doc.Kind)
		}
		kept, err := decodeOrgDocument(content)
		if err != nil {
			t.Fatalf("kept document does not decode: %v", err)
		}
		if !proto.Equal(kept, &wire.OrgDocument{Kind: doc.Kind, Body: doc.Body, Signature: doc.Signature}) {
			t.Fatal("kept document differs from the one checked")
		}
	})
}

// FuzzOrgWipeConfirm feeds OrgWipeConfirmRequest encodings to the relay's
// check: only the device key's signature over the order hash passes;
// everything else is ErrBadRequest or ErrBadSignature.
func FuzzOrgWipeConfirm(f *testing.F) {
	devKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{0x17}, ed25519.SeedSize))
	pub := devKey.Public().(ed25519.PublicKey)
	h := sha256.Sum256([]byte("an org wipe order body"))
	good := &wire.OrgWipeConfirmRequest{OrderHash: h[:], Signature: ed25519.Sign(devKey, append([]byte(orgWipeConfirmDomain), h[:]...))}
	if err := checkWipeConfirm(pub, good); err != nil {
		f.Fatalf("a real confirmation is refused: %v", err)
	}
	for _, r := range []*wire.OrgWipeConfirmRequest{
		good,
		{OrderHash: h[:16], Signature: good.Signature},
		{OrderHash: h[:], Signature: make([]byte, 64)},
		{},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wire.OrgWipeConfirmRequest
		if proto.Unmarshal(b, &r) != nil {
			return
		}
		err := checkWipeConfirm(pub, &r)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !ed25519.Verify(pub, append([]byte(orgWipeConfirmDomain), r.OrderHash...), r.Signature) || len(r.OrderHash) != 32 {
			t.Fatal("accepted a confirmation the device did not sign")
		}
	})
}
