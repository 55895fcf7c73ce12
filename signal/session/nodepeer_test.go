package session

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/internal/testneed"
	"sotto/signal/fingerprint"
)

// nodePeer drives the libsignal 0.90 Node peer of the interop tree (when it
// has been installed) for a quick byte-compatibility check of this package.
type nodePeer struct {
	t   *testing.T
	in  *json.Encoder
	out *bufio.Scanner
	id  int
}

func startNodePeer(t *testing.T) *nodePeer {
	dir := filepath.Join("..", "..", "interop", "signal-node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@signalapp", "libsignal-client")); err != nil {
		testneed.Skip(t, "libsignal Node peer not installed in %s: run make deps", dir)
	}
	if _, err := exec.LookPath("node"); err != nil {
		testneed.Skip(t, "node not installed: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "node", "peer.mjs")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	return &nodePeer{t: t, in: json.NewEncoder(stdin), out: sc}
}

func (n *nodePeer) call(req map[string]any) (map[string]any, error) {
	n.t.Helper()
	n.id++
	req["id"] = n.id
	if err := n.in.Encode(req); err != nil {
		n.t.Fatal(err)
	}
	if !n.out.Scan() {
		n.t.Fatalf("node peer closed: %v", n.out.Err())
	}
	var res map[string]any
	if err := json.Unmarshal(n.out.Bytes(), &res); err != nil {
		n.t.Fatal(err)
	}
	if ok, _ := res["ok"].(bool); !ok {
		return res, fmt.Errorf("%v", res["error"])
	}
	return res, nil
}

func (n *nodePeer) mustCall(req map[string]any) map[string]any {
	n.t.Helper()
	res, err := n.call(req)
	if err != nil {
		n.t.Fatalf("%v: %v", req["op"], err)
	}
	return res
}

func b64d(t *testing.T, v any) []byte {
	t.Helper()
	s, _ := v.(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func num(v any) uint32 { f, _ := v.(float64); return uint32(f) }

func (n *nodePeer) encrypt(name, peer, msg string) sealed {
	res := n.mustCall(map[string]any{"op": "encrypt", "name": name, "peer": peer,
		"plaintext": base64.StdEncoding.EncodeToString([]byte(msg))})
	return sealed{int(num(res["type"])), b64d(n.t, res["ciphertext"])}
}

func (n *nodePeer) decrypt(name, peer string, m sealed, want string) {
	n.t.Helper()
	res := n.mustCall(map[string]any{"op": "decrypt", "name": name, "peer": peer, "type": m.typ,
		"ciphertext": base64.StdEncoding.EncodeToString(m.ct)})
	if got := string(b64d(n.t, res["plaintext"])); got != want {
		n.t.Fatalf("libsignal decrypted %q, want %q", got, want)
	}
}

// TestNodePeerInterop runs each scenario against its own libsignal process,
// one subtest per scenario.
func TestNodePeerInterop(t *testing.T) {
	for _, oneTime := range []bool{true, false} {
		t.Run(fmt.Sprintf("GoInitiates/one_time_prekey=%v", oneTime), func(t *testing.T) {
			nodePeerGoInitiates(t, startNodePeer(t), oneTime)
		})
	}
	t.Run("LibsignalInitiates", func(t *testing.T) { nodePeerLibsignalInitiates(t, startNodePeer(t)) })
	t.Run("SimultaneousInitiation", func(t *testing.T) { nodePeerSimultaneous(t, startNodePeer(t)) })
}

// nodePeerGoInitiates: libsignal is Bob; Go is Alice, with or without a
// one-time prekey in Bob's bundle.
func nodePeerGoInitiates(t *testing.T, n *nodePeer, oneTime bool) {
	n.mustCall(map[string]any{"op": "create", "name": "bob", "registration_id": 77})
	alice := newParty(t, fmt.Sprint("alice", oneTime), nil)
	bob := &party{addr: Address{Name: "bob", DeviceID: 1}}
	res := n.mustCall(map[string]any{"op": "bundle", "name": "bob", "one_time": oneTime})
	b := &PreKeyBundle{
		RegistrationID: num(res["registration_id"]), DeviceID: num(res["device_id"]),
		SignedPreKeyID: num(res["signed_prekey_id"]), SignedPreKey: b64d(t, res["signed_prekey"]),
		SignedPreKeySignature: b64d(t, res["signed_prekey_signature"]),
		KyberPreKeyID:         num(res["kyber_prekey_id"]), KyberPreKey: b64d(t, res["kyber_prekey"]),
		KyberPreKeySignature: b64d(t, res["kyber_prekey_signature"]),
		IdentityKey:          b64d(t, res["identity_key"]),
	}
	if res["prekey_id"] != nil {
		b.HasPreKey, b.PreKeyID, b.PreKey = true, num(res["prekey_id"]), b64d(t, res["prekey"])
	}
	alice.startWith(t, bob, b)
	name := alice.addr.Name
	m1, m2 := alice.send(t, bob, "go to libsignal 1"), alice.send(t, bob, "go to libsignal 2")
	n.decrypt("bob", name, m2, "go to libsignal 2")
	n.decrypt("bob", name, m1, "go to libsignal 1")
	if _, err := n.call(map[string]any{"op": "decrypt", "name": "bob", "peer": name, "type": m1.typ,
		"ciphertext": base64.StdEncoding.EncodeToString(m1.ct)}); err == nil || !strings.HasPrefix(err.Error(), "duplicate_message") {
		t.Fatalf("libsignal on replay: %v", err)
	}
	for round := 0; round < 4; round++ {
		r1 := n.encrypt("bob", name, fmt.Sprint("lib ", round, " a"))
		r2 := n.encrypt("bob", name, fmt.Sprint("lib ", round, " b"))
		alice.mustOpen(t, bob, r2, fmt.Sprint("lib ", round, " b"))
		alice.mustOpen(t, bob, r1, fmt.Sprint("lib ", round, " a"))
		g := alice.send(t, bob, fmt.Sprint("go ", round))
		n.decrypt("bob", name, g, fmt.Sprint("go ", round))
	}
	// Safety numbers agree.
	ours, _ := fingerprint.New(2, 5200, []byte(name), alice.id.PublicKey().Serialize(), []byte("bob"), b.IdentityKey)
	if oneTime {
		fres := n.mustCall(map[string]any{"op": "fingerprint", "name": "bob", "peer": name,
			"local_id":  base64.StdEncoding.EncodeToString([]byte("bob")),
			"remote_id": base64.StdEncoding.EncodeToString([]byte(name))})
		if fres["displayable"] != ours.Displayable() {
			t.Fatalf("safety numbers differ: %v vs %s", fres["displayable"], ours.Displayable())
		}
		theirs := b64d(t, fres["scannable"])
		if ok, err := ours.CompareScanned(theirs); !ok || err != nil {
			t.Fatalf("scannable fingerprints differ: %v", err)
		}
	}
}

// nodePeerLibsignalInitiates: libsignal is Alice; Go is Bob.
func nodePeerLibsignalInitiates(t *testing.T, n *nodePeer) {
	n.mustCall(map[string]any{"op": "create", "name": "carol", "registration_id": 78})
	gob := newParty(t, "gobob", nil)
	carol := &party{addr: Address{Name: "carol", DeviceID: 1}}
	b := gob.bundle(t, true, 3)
	bundle := map[string]any{
		"registration_id": b.RegistrationID, "device_id": b.DeviceID,
		"prekey_id": b.PreKeyID, "prekey": b.PreKey,
		"signed_prekey_id": b.SignedPreKeyID, "signed_prekey": b.SignedPreKey,
		"signed_prekey_signature": b.SignedPreKeySignature,
		"kyber_prekey_id":         b.KyberPreKeyID, "kyber_prekey": b.KyberPreKey,
		"kyber_prekey_signature": b.KyberPreKeySignature, "identity_key": b.IdentityKey,
	}
	for k, v := range bundle {
		if bs, ok := v.([]byte); ok {
			bundle[k] = base64.StdEncoding.EncodeToString(bs)
		}
	}
	n.mustCall(map[string]any{"op": "process_bundle", "name": "carol", "peer": "gobob", "bundle": bundle})
	c1, c2 := n.encrypt("carol", "gobob", "lib first"), n.encrypt("carol", "gobob", "lib second")
	if c1.typ != MessageTypePreKey {
		t.Fatalf("libsignal first message type %d", c1.typ)
	}
	gob.mustOpen(t, carol, c2, "lib second")
	gob.mustOpen(t, carol, c1, "lib first")
	if _, err := gob.open(carol, c1); err == nil {
		t.Fatal("replayed libsignal prekey message accepted")
	}
	for round := 0; round < 4; round++ {
		g1, g2 := gob.send(t, carol, fmt.Sprint("go ", round, " a")), gob.send(t, carol, fmt.Sprint("go ", round, " b"))
		n.decrypt("carol", "gobob", g1, fmt.Sprint("go ", round, " a"))
		n.decrypt("carol", "gobob", g2, fmt.Sprint("go ", round, " b"))
		l := n.encrypt("carol", "gobob", fmt.Sprint("lib ", round))
		gob.mustOpen(t, carol, l, fmt.Sprint("lib ", round))
	}
}

// nodePeerSimultaneous: each side starts from the other's bundle and both
// first messages cross, then a burst from libsignal arrives out of order.
func nodePeerSimultaneous(t *testing.T, n *nodePeer) {
	n.mustCall(map[string]any{"op": "create", "name": "dave", "registration_id": 79})
	goe := newParty(t, "goeve", nil)
	dave := &party{addr: Address{Name: "dave", DeviceID: 1}}
	eb := goe.bundle(t, false, 4)
	ebm := map[string]any{
		"registration_id": eb.RegistrationID, "device_id": eb.DeviceID,
		"signed_prekey_id": eb.SignedPreKeyID, "signed_prekey": base64.StdEncoding.EncodeToString(eb.SignedPreKey),
		"signed_prekey_signature": base64.StdEncoding.EncodeToString(eb.SignedPreKeySignature),
		"kyber_prekey_id":         eb.KyberPreKeyID, "kyber_prekey": base64.StdEncoding.EncodeToString(eb.KyberPreKey),
		"kyber_prekey_signature": base64.StdEncoding.EncodeToString(eb.KyberPreKeySignature),
		"identity_key":           base64.StdEncoding.EncodeToString(eb.IdentityKey),
	}
	n.mustCall(map[string]any{"op": "process_bundle", "name": "dave", "peer": "goeve", "bundle": ebm})
	res := n.mustCall(map[string]any{"op": "bundle", "name": "dave", "one_time": true})
	db := &PreKeyBundle{
		RegistrationID: num(res["registration_id"]), DeviceID: num(res["device_id"]),
		SignedPreKeyID: num(res["signed_prekey_id"]), SignedPreKey: b64d(t, res["signed_prekey"]),
		SignedPreKeySignature: b64d(t, res["signed_prekey_signature"]),
		KyberPreKeyID:         num(res["kyber_prekey_id"]), KyberPreKey: b64d(t, res["kyber_prekey"]),
		KyberPreKeySignature: b64d(t, res["kyber_prekey_signature"]),
		IdentityKey:          b64d(t, res["identity_key"]),
		HasPreKey:            true, PreKeyID: num(res["prekey_id"]), PreKey: b64d(t, res["prekey"]),
	}
	goe.startWith(t, dave, db)
	fromDave := n.encrypt("dave", "goeve", "dave first")
	fromEve := goe.send(t, dave, "eve first")
	goe.mustOpen(t, dave, fromDave, "dave first")
	n.decrypt("dave", "goeve", fromEve, "eve first")
	for round := 0; round < 3; round++ {
		x := goe.send(t, dave, fmt.Sprint("eve ", round))
		y := n.encrypt("dave", "goeve", fmt.Sprint("dave ", round))
		n.decrypt("dave", "goeve", x, fmt.Sprint("eve ", round))
		goe.mustOpen(t, dave, y, fmt.Sprint("dave ", round))
	}
	// A burst from libsignal delivered out of order, one message held
	// back across two DH steps.
	var burst []sealed
	for i := 0; i < 30; i++ {
		burst = append(burst, n.encrypt("dave", "goeve", fmt.Sprint("burst ", i)))
	}
	for i := 29; i >= 1; i -= 2 {
		goe.mustOpen(t, dave, burst[i], fmt.Sprint("burst ", i))
	}
	for i := 2; i < 30; i += 2 {
		goe.mustOpen(t, dave, burst[i], fmt.Sprint("burst ", i))
	}
	n.decrypt("dave", "goeve", goe.send(t, dave, "turn"), "turn")
	goe.mustOpen(t, dave, n.encrypt("dave", "goeve", "turn back"), "turn back")
	n.decrypt("dave", "goeve", goe.send(t, dave, "turn again"), "turn again")
	goe.mustOpen(t, dave, burst[0], "burst 0")
	for round := 0; round < 2; round++ {
		n.decrypt("dave", "goeve", goe.send(t, dave, "tail"), "tail")
		goe.mustOpen(t, dave, n.encrypt("dave", "goeve", "tail back"), "tail back")
	}
}
