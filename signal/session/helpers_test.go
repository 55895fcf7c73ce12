package session

import (
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// party is one device with its stores and published prekeys.
type party struct {
	addr  Address
	id    *IdentityKeyPair
	store *MemoryStore
	rand  io.Reader
}

func newParty(t testing.TB, name string, rnd io.Reader) *party {
	t.Helper()
	if rnd == nil {
		rnd = rand.Reader
	}
	id, err := GenerateIdentityKeyPair(rnd)
	if err != nil {
		t.Fatal(err)
	}
	var rb [2]byte
	if _, err := io.ReadFull(rnd, rb[:]); err != nil {
		t.Fatal(err)
	}
	return &party{addr: Address{Name: name, DeviceID: 1}, id: id,
		store: NewMemoryStore(id, uint32(rb[0])<<8|uint32(rb[1])|1), rand: rnd}
}

// bundle publishes fresh prekeys and returns the bundle others would fetch.
func (p *party) bundle(t testing.TB, withOneTime bool, keyID uint32) *PreKeyBundle {
	t.Helper()
	ctx := context.Background()
	spk, err := GenerateSignedPreKey(p.rand, p.id, keyID, testNow)
	if err != nil {
		t.Fatal(err)
	}
	kpk, err := GenerateKyberPreKey(p.rand, p.id, keyID+1000, testNow)
	if err != nil {
		t.Fatal(err)
	}
	must(t, p.store.StoreSignedPreKey(ctx, spk.ID(), spk))
	must(t, p.store.StoreKyberPreKey(ctx, kpk.ID(), kpk, false))
	b := &PreKeyBundle{
		RegistrationID: p.store.regID, DeviceID: p.addr.DeviceID,
		SignedPreKeyID: spk.ID(), SignedPreKey: spk.PublicKey(), SignedPreKeySignature: spk.Signature(),
		KyberPreKeyID: kpk.ID(), KyberPreKey: kpk.PublicKey(), KyberPreKeySignature: kpk.Signature(),
		IdentityKey: p.id.PublicKey().Serialize(),
	}
	if withOneTime {
		pks, err := GeneratePreKeys(p.rand, keyID+2000, 1)
		if err != nil {
			t.Fatal(err)
		}
		must(t, p.store.StorePreKey(ctx, pks[0].ID(), pks[0]))
		b.HasPreKey, b.PreKeyID, b.PreKey = true, pks[0].ID(), pks[0].PublicKey()
	}
	return b
}

func (p *party) startWith(t testing.TB, q *party, b *PreKeyBundle) {
	t.Helper()
	must(t, ProcessPreKeyBundle(context.Background(), p.rand, p.store.Stores(), q.addr, b, testNow))
}

type sealed struct {
	typ int
	ct  []byte
}

func (p *party) send(t testing.TB, to *party, msg string) sealed {
	t.Helper()
	typ, ct, err := EncryptRand(context.Background(), p.rand, p.store.Stores(), to.addr, []byte(msg), testNow)
	if err != nil {
		t.Fatalf("%s encrypt: %v", p.addr, err)
	}
	return sealed{typ, ct}
}

func (p *party) open(from *party, m sealed) (string, error) {
	pt, err := Decrypt(context.Background(), p.rand, p.store.Stores(), from.addr, m.typ, m.ct)
	return string(pt), err
}

func (p *party) mustOpen(t testing.TB, from *party, m sealed, want string) {
	t.Helper()
	got, err := p.open(from, m)
	if err != nil {
		t.Fatalf("%s decrypt %q: %v", p.addr, want, err)
	}
	if got != want {
		t.Fatalf("%s decrypted %q, want %q", p.addr, got, want)
	}
}

// snapshot returns the serialized session p holds with q.
func (p *party) snapshot(t testing.TB, q *party) []byte {
	t.Helper()
	r, err := p.store.LoadSession(context.Background(), q.addr)
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		return nil
	}
	return r.Serialize()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
