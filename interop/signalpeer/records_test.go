package signalpeer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"sotto/signal/session"
)

// goParty is one party of Sotto's session package, in process.
type goParty struct {
	addr  session.Address
	id    *session.IdentityKeyPair
	regID uint32
	store *session.MemoryStore
}

func newGoParty(t *testing.T, name string, regID uint32) *goParty {
	t.Helper()
	id, err := session.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &goParty{addr: session.Address{Name: name, DeviceID: 1}, id: id, regID: regID,
		store: session.NewMemoryStore(id, regID)}
}

type goPreKeys struct {
	pre    *session.PreKeyRecord
	signed *session.SignedPreKeyRecord
	kyber  *session.KyberPreKeyRecord
}

// publish stores a fresh one-time, signed and Kyber prekey and returns them with the
// bundle that carries them.
func (p *goParty) publish(t *testing.T) (*goPreKeys, *session.PreKeyBundle) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	pres, err := session.GeneratePreKeys(rand.Reader, 31, 1)
	if err != nil {
		t.Fatal(err)
	}
	spk, err := session.GenerateSignedPreKey(rand.Reader, p.id, 7, now)
	if err != nil {
		t.Fatal(err)
	}
	kpk, err := session.GenerateKyberPreKey(rand.Reader, p.id, 9, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		p.store.StorePreKey(ctx, pres[0].ID(), pres[0]),
		p.store.StoreSignedPreKey(ctx, spk.ID(), spk),
		p.store.StoreKyberPreKey(ctx, kpk.ID(), kpk, false),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return &goPreKeys{pres[0], spk, kpk}, &session.PreKeyBundle{
		RegistrationID: p.regID, DeviceID: 1,
		HasPreKey: true, PreKeyID: pres[0].ID(), PreKey: pres[0].PublicKey(),
		SignedPreKeyID: spk.ID(), SignedPreKey: spk.PublicKey(), SignedPreKeySignature: spk.Signature(),
		KyberPreKeyID: kpk.ID(), KyberPreKey: kpk.PublicKey(), KyberPreKeySignature: kpk.Signature(),
		IdentityKey: p.id.PublicKey().Serialize(),
	}
}

type goMsg struct {
	Type       int    `json:"type"`
	Ciphertext []byte `json:"ciphertext"`
}

func (p *goParty) encrypt(t *testing.T, to *goParty, text string) goMsg {
	t.Helper()
	typ, ct, err := session.Encrypt(context.Background(), p.store.Stores(), to.addr, []byte(text), time.Now())
	if err != nil {
		t.Fatalf("%s encrypts: %v", p.addr, err)
	}
	return goMsg{typ, ct}
}

func (p *goParty) decrypt(t *testing.T, from *goParty, m goMsg, want string) {
	t.Helper()
	pt, err := session.Decrypt(context.Background(), rand.Reader, p.store.Stores(), from.addr, m.Type, m.Ciphertext)
	if err != nil {
		t.Fatalf("%s decrypts from %s: %v", p.addr, from.addr, err)
	}
	if string(pt) != want {
		t.Fatalf("%s decrypts %q, want %q", p.addr, pt, want)
	}
}

func (p *goParty) record(t *testing.T, with *goParty) []byte {
	t.Helper()
	r, err := p.store.LoadSession(context.Background(), with.addr)
	if err != nil || r == nil {
		t.Fatalf("%s has no session with %s: %v", p.addr, with.addr, err)
	}
	return r.Serialize()
}

func (p *goParty) setRecord(t *testing.T, with *goParty, b []byte) {
	t.Helper()
	r, err := session.ParseRecord(b)
	if err != nil {
		t.Fatalf("parse libsignal's session record: %v", err)
	}
	if err := p.store.StoreSession(context.Background(), with.addr, r); err != nil {
		t.Fatal(err)
	}
}

type takeoverRequest struct {
	Identity       []byte         `json:"identity"`
	RegistrationID uint32         `json:"registration_id"`
	Remote         map[string]any `json:"remote"`
	Local          map[string]any `json:"local"`
	RemoteIdentity []byte         `json:"remote_identity"`
	Session        []byte         `json:"session"`
	PreKeys        [][]byte       `json:"prekeys,omitempty"`
	SignedPreKeys  [][]byte       `json:"signed_prekeys,omitempty"`
	KyberPreKeys   [][]byte       `json:"kyber_prekeys,omitempty"`
	Incoming       []goMsg        `json:"incoming"`
	Reply          []byte         `json:"reply"`
}

type publicRecord struct {
	ID        uint32 `json:"id"`
	PublicKey []byte `json:"public_key"`
	Signature []byte `json:"signature"`
}

type takeoverResult struct {
	Error          string         `json:"error"`
	IdentityPublic []byte         `json:"identity_public"`
	PreKeys        []publicRecord `json:"prekeys"`
	SignedPreKeys  []publicRecord `json:"signed_prekeys"`
	KyberPreKeys   []publicRecord `json:"kyber_prekeys"`
	Plaintexts     [][]byte       `json:"plaintexts"`
	Reply          *goMsg         `json:"reply"`
	Session        []byte         `json:"session"`
}

// takeover has libsignal continue as local (records.mjs) from the serialized state;
// with latest, the newest libsignal release does.
func takeover(t *testing.T, latest bool, local, remote *goParty, req takeoverRequest) *takeoverResult {
	t.Helper()
	node, script := nodePeerScript(t)
	args := []string{filepath.Join(filepath.Dir(script), "records.mjs")}
	if latest {
		_, lib := nodeLib(t, "signal-node-latest", libsignalLatestVersion)
		args = append(args, "--lib", lib)
	}
	req.Local = map[string]any{"name": local.addr.Name, "device_id": local.addr.DeviceID}
	req.Identity = local.id.Serialize()
	req.RegistrationID = local.regID
	req.Remote = map[string]any{"name": remote.addr.Name, "device_id": remote.addr.DeviceID}
	req.RemoteIdentity = remote.id.PublicKey().Serialize()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, args...)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	var res takeoverResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("records.mjs: %v, output %q", err, out)
	}
	if res.Error != "" || err != nil {
		t.Fatalf("libsignal could not continue from Sotto's state: %s (%v)", res.Error, err)
	}
	if !bytes.Equal(res.IdentityPublic, local.id.PublicKey().Serialize()) {
		t.Fatal("libsignal reads another public key from Sotto's IdentityKeyPair")
	}
	return &res
}

// TestSessionRecordWithLibsignal hands Sotto's session record (holding a skipped
// message key) to libsignal, which decrypts with it, skips a key of its own and
// replies; Sotto then takes libsignal's record back and goes on.
func TestSessionRecordWithLibsignal(t *testing.T) {
	for _, latest := range []bool{false, true} {
		t.Run(libName(latest), func(t *testing.T) { sessionRecordWithLibsignal(t, latest) })
	}
}

func libName(latest bool) string {
	if latest {
		return "libsignal-" + libsignalLatestVersion
	}
	return "libsignal-" + libsignalVersion
}

func sessionRecordWithLibsignal(t *testing.T, latest bool) {
	alice, bob := newGoParty(t, "alice", 11), newGoParty(t, "bob", 22)
	_, b := bob.publish(t)
	if err := session.ProcessPreKeyBundle(context.Background(), rand.Reader, alice.store.Stores(), bob.addr, b, time.Now()); err != nil {
		t.Fatal(err)
	}
	bob.decrypt(t, alice, alice.encrypt(t, bob, "hello"), "hello")
	alice.decrypt(t, bob, bob.encrypt(t, alice, "hi"), "hi")
	var fromBob []goMsg
	for i := range 5 {
		fromBob = append(fromBob, bob.encrypt(t, alice, fmt.Sprintf("b%d", i)))
	}
	alice.decrypt(t, bob, fromBob[1], "b1") // Sotto keeps the key of b0

	res := takeover(t, latest, alice, bob, takeoverRequest{
		Session:  alice.record(t, bob),
		Incoming: []goMsg{fromBob[0], fromBob[2], fromBob[4]}, // libsignal keeps the key of b3
		Reply:    []byte("libsignal, with Sotto's record"),
	})
	for i, want := range []string{"b0", "b2", "b4"} {
		if string(res.Plaintexts[i]) != want {
			t.Fatalf("libsignal decrypted %q, want %q", res.Plaintexts[i], want)
		}
	}
	bob.decrypt(t, alice, *res.Reply, "libsignal, with Sotto's record")

	alice.setRecord(t, bob, res.Session)
	alice.decrypt(t, bob, fromBob[3], "b3")
	for i := range 3 {
		bob.decrypt(t, alice, alice.encrypt(t, bob, fmt.Sprintf("a%d", i)), fmt.Sprintf("a%d", i))
		alice.decrypt(t, bob, bob.encrypt(t, alice, fmt.Sprintf("r%d", i)), fmt.Sprintf("r%d", i))
	}
}

// TestPreKeyRecordsWithLibsignal gives libsignal Sotto's serialized prekey records:
// it reads the same ids, keys and signatures, and answers a PreKeySignalMessage
// with them; Sotto takes the resulting session record back.
func TestPreKeyRecordsWithLibsignal(t *testing.T) {
	for _, latest := range []bool{false, true} {
		t.Run(libName(latest), func(t *testing.T) { preKeyRecordsWithLibsignal(t, latest) })
	}
}

func preKeyRecordsWithLibsignal(t *testing.T, latest bool) {
	alice, bob := newGoParty(t, "alice", 33), newGoParty(t, "bob", 44)
	pk, b := bob.publish(t)
	if err := session.ProcessPreKeyBundle(context.Background(), rand.Reader, alice.store.Stores(), bob.addr, b, time.Now()); err != nil {
		t.Fatal(err)
	}
	first := alice.encrypt(t, bob, "to libsignal, with Sotto's prekeys")
	second := alice.encrypt(t, bob, "again")
	res := takeover(t, latest, bob, alice, takeoverRequest{
		PreKeys:       [][]byte{pk.pre.Serialize()},
		SignedPreKeys: [][]byte{pk.signed.Serialize()},
		KyberPreKeys:  [][]byte{pk.kyber.Serialize()},
		Incoming:      []goMsg{first, second},
		Reply:         []byte("answered by libsignal"),
	})
	want := []publicRecord{{ID: pk.pre.ID(), PublicKey: pk.pre.PublicKey()}}
	if len(res.PreKeys) != 1 || res.PreKeys[0].ID != want[0].ID || !bytes.Equal(res.PreKeys[0].PublicKey, want[0].PublicKey) {
		t.Fatalf("libsignal reads prekey %+v, want %+v", res.PreKeys, want)
	}
	for _, c := range []struct {
		what string
		got  []publicRecord
		id   uint32
		pub  []byte
		sig  []byte
	}{
		{"signed prekey", res.SignedPreKeys, pk.signed.ID(), pk.signed.PublicKey(), pk.signed.Signature()},
		{"Kyber prekey", res.KyberPreKeys, pk.kyber.ID(), pk.kyber.PublicKey(), pk.kyber.Signature()},
	} {
		if len(c.got) != 1 || c.got[0].ID != c.id || !bytes.Equal(c.got[0].PublicKey, c.pub) || !bytes.Equal(c.got[0].Signature, c.sig) {
			t.Fatalf("libsignal reads another %s from Sotto's record", c.what)
		}
	}
	if string(res.Plaintexts[0]) != "to libsignal, with Sotto's prekeys" || string(res.Plaintexts[1]) != "again" {
		t.Fatalf("libsignal decrypted %q", res.Plaintexts)
	}
	alice.decrypt(t, bob, *res.Reply, "answered by libsignal")
	bob.setRecord(t, alice, res.Session)
	for i := range 3 {
		alice.decrypt(t, bob, bob.encrypt(t, alice, fmt.Sprintf("b%d", i)), fmt.Sprintf("b%d", i))
		bob.decrypt(t, alice, alice.encrypt(t, bob, fmt.Sprintf("a%d", i)), fmt.Sprintf("a%d", i))
	}
}
