package client

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"sotto/client/account"
	"sotto/client/content"
	"sotto/client/store"
	"sotto/signal/session"
	"sotto/wire"
)

var testKDF = store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}

// anyPassphrase lets the tests' throwaway passphrases ("pw") through the
// passphrase policy.
const anyPassphrase = store.NoPassphrasePolicy

// testDevice is a device's local state without a relay: enough to run the
// Signal stores against the encrypted store.
type testDevice struct {
	c       *Client
	prekeys *wire.PreKeys
}

func newTestDevice(t *testing.T, user string, identity *session.IdentityKeyPair) *testDevice {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), user)
	db, err := store.Create(ctx, dir, []byte("pass"), &store.Options{KDF: testKDF, MinPassphraseBits: anyPassphrase})
	if err != nil {
		t.Fatal(err)
	}
	if identity == nil {
		if identity, err = session.GenerateIdentityKeyPair(rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	acct := &account.Account{Username: user, Identity: identity.Serialize(), DeviceID: 1}
	if err := account.NewDeviceKeys(acct); err != nil {
		t.Fatal(err)
	}
	pks, err := generatePreKeys(ctx, db, acct, identity, 3, 2, true, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := account.Save(ctx, db, acct); err != nil {
		t.Fatal(err)
	}
	c, err := newClient(ctx, db, (*Options)(nil).withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &testDevice{c: c, prekeys: pks}
}

func (d *testDevice) bundle(i int) *session.PreKeyBundle {
	p := d.prekeys
	return &session.PreKeyBundle{
		RegistrationID: d.c.acct.RegistrationID, DeviceID: d.c.acct.DeviceID,
		HasPreKey: true, PreKeyID: p.OneTimePrekeys[i].Id, PreKey: p.OneTimePrekeys[i].PublicKey,
		SignedPreKeyID: p.SignedPrekey.Id, SignedPreKey: p.SignedPrekey.PublicKey, SignedPreKeySignature: p.SignedPrekey.Signature,
		KyberPreKeyID: p.OneTimeKyberPrekeys[i].Id, KyberPreKey: p.OneTimeKyberPrekeys[i].PublicKey, KyberPreKeySignature: p.OneTimeKyberPrekeys[i].Signature,
		IdentityKey: d.c.IdentityKey(),
	}
}

// deliver decrypts and applies an envelope the way the receive loop does.
func deliver(t *testing.T, to *testDevice, from *testDevice, typ int, ct []byte) (*received, error) {
	t.Helper()
	ctx := context.Background()
	env := &wire.Envelope{Sender: from.c.acct.Username, SenderDevice: from.c.acct.DeviceID, Type: uint32(typ), Content: ct, ServerTimestampMs: time.Now().UnixMilli()}
	var r received
	err := to.c.db.Update(ctx, func(tx *store.Tx) error {
		ss := to.c.sigStores(tx)
		pt, err := session.Decrypt(ctx, rand.Reader, ss.stores(), session.Address{Name: env.Sender, DeviceID: env.SenderDevice}, typ, ct)
		if err != nil {
			return err
		}
		r.changed = ss.changed
		c, err := content.Decode(pt)
		if err != nil {
			return err
		}
		return to.c.handlers.handle(ctx, tx, env, c, &r)
	})
	return &r, err
}

func encryptText(t *testing.T, from, to *testDevice, text string) (int, []byte, *content.Content) {
	t.Helper()
	ctx := context.Background()
	c, err := content.NewText(text, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pt, err := content.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	typ, ct, err := session.Encrypt(ctx, from.c.sigStores(from.c.db).stores(), session.Address{Name: to.c.acct.Username, DeviceID: 1}, pt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return typ, ct, c
}

func TestSessionOverEncryptedStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice := newTestDevice(t, "alice", nil)
	bob := newTestDevice(t, "bob", nil)
	ss := alice.c.sigStores(alice.c.db)
	if err := session.ProcessPreKeyBundle(ctx, rand.Reader, ss.stores(), session.Address{Name: "bob", DeviceID: 1}, bob.bundle(0), time.Now()); err != nil {
		t.Fatal(err)
	}
	typ, ct, sent := encryptText(t, alice, bob, "hello bob")
	if typ != session.MessageTypePreKey {
		t.Fatalf("first message type %d", typ)
	}
	r, err := deliver(t, bob, alice, typ, ct)
	if err != nil {
		t.Fatal(err)
	}
	if r.msg == nil || r.msg.Text != "hello bob" || r.msg.From != "alice" {
		t.Fatalf("received %+v", r.msg)
	}
	// The same envelope again: the ratchet rejects it, nothing is stored twice.
	if _, err := deliver(t, bob, alice, typ, ct); !errors.Is(err, session.ErrDuplicateMessage) {
		t.Fatalf("redelivery: %v, want ErrDuplicateMessage", err)
	}
	// The same content re-encrypted (a sender retry): stored once.
	pt, _ := content.Encode(sent)
	typ2, ct2, err := session.Encrypt(ctx, ss.stores(), session.Address{Name: "bob", DeviceID: 1}, pt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err = deliver(t, bob, alice, typ2, ct2)
	if err != nil || r.msg != nil {
		t.Fatalf("retry: msg=%v err=%v, want deduplicated", r.msg, err)
	}
	h, err := bob.c.History(ctx, "alice", 0)
	if err != nil || len(h) != 1 {
		t.Fatalf("history %d %v", len(h), err)
	}
	// The prekeys used were consumed.
	if _, err := bob.c.sigStores(bob.c.db).LoadPreKey(ctx, bob.prekeys.OneTimePrekeys[0].Id); !errors.Is(err, session.ErrInvalidKeyID) {
		t.Fatalf("one-time prekey survived: %v", err)
	}
	// Bob answers over the established session.
	typ, ct, _ = encryptText(t, bob, alice, "hi alice")
	if r, err = deliver(t, alice, bob, typ, ct); err != nil || r.msg == nil || r.msg.Text != "hi alice" {
		t.Fatalf("reply: %+v %v", r, err)
	}
	if _, err := alice.c.SafetyNumber(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	an, _ := alice.c.SafetyNumber(ctx, "bob")
	bn, _ := bob.c.SafetyNumber(ctx, "alice")
	if an.Digits != bn.Digits || len(an.Digits) != 60 || len(an.Groups()) != 71 {
		t.Fatalf("safety numbers differ or malformed: %q %q", an.Groups(), bn.Groups())
	}
}

func TestIdentityChangeBlocksSending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice := newTestDevice(t, "alice", nil)
	bob := newTestDevice(t, "bob", nil)
	ss := alice.c.sigStores(alice.c.db)
	bobAddr := session.Address{Name: "bob", DeviceID: 1}
	if err := session.ProcessPreKeyBundle(ctx, rand.Reader, ss.stores(), bobAddr, bob.bundle(0), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.SaveIdentity(ctx, bobAddr, bob.c.IdentityKey()); err != nil {
		t.Fatal(err)
	}
	before, err := alice.c.SafetyNumber(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	// Bob reinstalls: a new identity key. Alice receives from it.
	bob2 := newTestDevice(t, "bob", nil)
	if err := session.ProcessPreKeyBundle(ctx, rand.Reader, bob2.c.sigStores(bob2.c.db).stores(), session.Address{Name: "alice", DeviceID: 1}, alice.bundle(1), time.Now()); err != nil {
		t.Fatal(err)
	}
	typ, ct, _ := encryptText(t, bob2, alice, "new phone")
	r, err := deliver(t, alice, bob2, typ, ct)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.changed) != 1 || r.changed[0] != "bob" || r.msg == nil || !r.msg.Unverified {
		t.Fatalf("change not reported: %+v", r)
	}
	_, err = alice.c.sendContent(ctx, "bob", mustText(t, "x"), nil)
	var ice *IdentityChangedError
	if !errors.As(err, &ice) || ice.User != "bob" {
		t.Fatalf("send after change: %v", err)
	}
	if trusted, _ := ss.IsTrustedIdentity(ctx, bobAddr, bob2.c.IdentityKey(), session.Sending); trusted {
		t.Fatal("changed identity trusted for sending before acceptance")
	}
	after, err := alice.c.SafetyNumber(ctx, "bob")
	if err != nil || after.Digits == before.Digits || !after.Changed {
		t.Fatalf("safety number after change: %+v %v", after, err)
	}
	if err := alice.c.Verify(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if trusted, _ := ss.IsTrustedIdentity(ctx, bobAddr, bob2.c.IdentityKey(), session.Sending); !trusted {
		t.Fatal("accepted identity not trusted")
	}
	cs, err := alice.c.Contacts(ctx)
	if err != nil || len(cs) != 1 || !cs[0].Verified || cs[0].Changed {
		t.Fatalf("contacts %+v %v", cs, err)
	}
}

func mustText(t *testing.T, s string) *content.Content {
	c, err := content.NewText(s, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWipeOrderOnlyFromOwnDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	alice := newTestDevice(t, "alice", nil)
	bob := newTestDevice(t, "bob", nil)
	ss := bob.c.sigStores(bob.c.db)
	if err := session.ProcessPreKeyBundle(ctx, rand.Reader, ss.stores(), session.Address{Name: "alice", DeviceID: 1}, alice.bundle(0), time.Now()); err != nil {
		t.Fatal(err)
	}
	order, err := content.NewWipeOrder(alice.c.DeviceID(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pt, err := content.Encode(order)
	if err != nil {
		t.Fatal(err)
	}
	typ, ct, err := session.Encrypt(ctx, ss.stores(), session.Address{Name: "alice", DeviceID: 1}, pt, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r, err := deliver(t, alice, bob, typ, ct)
	if err != nil {
		t.Fatal(err)
	}
	if r.wipeBy != 0 {
		t.Fatal("a wipe order from another account was accepted")
	}
	if !store.Exists(alice.c.db.Dir()) {
		t.Fatal("store gone")
	}
}
