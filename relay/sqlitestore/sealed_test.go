package sqlitestore_test

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/relay/storetest"
	"sotto/wire"
)

func TestSealedConformance(t *testing.T) {
	dir := t.TempDir()
	storetest.RunSealed(t, func(t *testing.T) (relay.Store, func() relay.Store) {
		open := func() relay.Store {
			s, err := sqlitestore.Open(context.Background(), dir, sqlitestore.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(), open
	})
}

// BenchmarkSealedSendKeyLookups is what the relay reads from the store to
// authorize one sealed send: the recipient's access key and the
// organization's member access document (kept as an encoded OrgDocument).
func BenchmarkSealedSendKeyLookups(b *testing.B) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, b.TempDir(), sqlitestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var acct relay.AccountID
	acct[0] = 1
	if err := s.SetAccessKey(ctx, acct, make([]byte, wire.AccessKeySize)); err != nil {
		b.Fatal(err)
	}
	body, _ := proto.Marshal(&wire.MemberAccess{Version: 1, AccessKey: make([]byte, wire.AccessKeySize)})
	doc, _ := proto.Marshal(&wire.OrgDocument{Kind: wire.OrgDocumentKind_ORG_MEMBER_ACCESS, Body: body, Signature: make([]byte, 64)})
	if err := s.PutOrgDocument(ctx, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, "", doc); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		member bool
	}{{"access-key-only", false}, {"with-member-access", true}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.AccessKey(ctx, acct); err != nil {
					b.Fatal(err)
				}
				if !bc.member {
					continue
				}
				raw, err := s.OrgDocument(ctx, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, "")
				if err != nil {
					b.Fatal(err)
				}
				var d wire.OrgDocument
				var m wire.MemberAccess
				if proto.Unmarshal(raw, &d) != nil || proto.Unmarshal(d.Body, &m) != nil {
					b.Fatal("decode")
				}
			}
		})
	}
}
