package session

import (
	"bytes"
	"context"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time. The machine the
// benchmarks run on is shared, so wall time per op swings with other
// load; CPU time per op ("cpu-ns/op") is the steadier figure.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkPQXDH measures both sides of a session setup: the initiator
// processes a bundle and encrypts, the responder decrypts the
// PreKeySignalMessage (one-time EC prekey and Kyber prekey included).
func BenchmarkPQXDH(b *testing.B) {
	ctx := context.Background()
	alice, bob := newParty(b, "alice", nil), newParty(b, "bob", nil)
	bundle := bob.bundle(b, true, 1)
	pk, _ := bob.store.LoadPreKey(ctx, bundle.PreKeyID)
	kpk, _ := bob.store.LoadKyberPreKey(ctx, bundle.KyberPreKeyID)
	msg := bytes.Repeat([]byte("x"), 200)
	b.ReportAllocs()
	start := cpuTime(b)
	defer func() { reportCPU(b, start) }()
	for b.Loop() {
		alice.store.sessions = map[Address]*Record{}
		bob.store.sessions = map[Address]*Record{}
		bob.store.preKeys[pk.ID()] = pk
		bob.store.kyber[kpk.ID()] = kpk
		if err := ProcessPreKeyBundle(ctx, alice.rand, alice.store.Stores(), bob.addr, bundle, testNow); err != nil {
			b.Fatal(err)
		}
		typ, ct, err := Encrypt(ctx, alice.store.Stores(), bob.addr, msg, testNow)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decrypt(ctx, bob.rand, bob.store.Stores(), alice.addr, typ, ct); err != nil {
			b.Fatal(err)
		}
	}
}

// establishedPair returns a session both sides have acknowledged. With
// classical set, both records drop their SPQR state afterwards, so the
// session runs the Double Ratchet alone (as a record from before SPQR
// would): the baseline the SPQR cost is measured against.
func establishedPair(b *testing.B, classical bool) (*party, *party) {
	alice, bob := newParty(b, "alice", nil), newParty(b, "bob", nil)
	alice.startWith(b, bob, bob.bundle(b, true, 1))
	bob.mustOpen(b, alice, alice.send(b, bob, "hello"), "hello")
	alice.mustOpen(b, bob, bob.send(b, alice, "hi"), "hi")
	if classical {
		for _, p := range [][2]*party{{alice, bob}, {bob, alice}} {
			r, _ := p[0].store.LoadSession(context.Background(), p[1].addr)
			r.current.pqState = nil
			if err := p[0].store.StoreSession(context.Background(), p[1].addr, r); err != nil {
				b.Fatal(err)
			}
		}
	}
	return alice, bob
}

// ratchetModes are the sub-benchmarks: the triple ratchet and the Double
// Ratchet alone.
var ratchetModes = []struct {
	name      string
	classical bool
}{{"spqr", false}, {"classical", true}}

// reportWire reports the mean serialized message size.
func reportWire(b *testing.B, total, n int) {
	if n > 0 {
		b.ReportMetric(float64(total)/float64(n), "wire-B/msg")
	}
}

// BenchmarkRatchetSameChain measures encrypt+decrypt of a 200-byte message
// on one sending chain (no DH step).
func BenchmarkRatchetSameChain(b *testing.B) {
	for _, mode := range ratchetModes {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			alice, bob := establishedPair(b, mode.classical)
			msg := bytes.Repeat([]byte("x"), 200)
			as, bs := alice.store.Stores(), bob.store.Stores()
			var wire, n int
			b.ReportAllocs()
			start := cpuTime(b)
			defer func() { reportCPU(b, start); reportWire(b, wire, n) }()
			for b.Loop() {
				typ, ct, err := Encrypt(ctx, as, bob.addr, msg, testNow)
				if err != nil {
					b.Fatal(err)
				}
				wire, n = wire+len(ct), n+1
				if _, err := Decrypt(ctx, bob.rand, bs, alice.addr, typ, ct); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRatchetDHStep measures encrypt+decrypt of a 200-byte message
// when each message turns the conversation around (a DH ratchet step on
// each side). With SPQR this ping-pong also completes an SPQR epoch every
// 80 or so messages (ML-KEM-768 key generation, encapsulation and
// decapsulation included in the mean).
func BenchmarkRatchetDHStep(b *testing.B) {
	for _, mode := range ratchetModes {
		b.Run(mode.name, func(b *testing.B) {
			ctx := context.Background()
			alice, bob := establishedPair(b, mode.classical)
			msg := bytes.Repeat([]byte("x"), 200)
			from, to := alice, bob
			var wire, n int
			b.ReportAllocs()
			start := cpuTime(b)
			defer func() { reportCPU(b, start); reportWire(b, wire, n) }()
			for b.Loop() {
				typ, ct, err := Encrypt(ctx, from.store.Stores(), to.addr, msg, testNow)
				if err != nil {
					b.Fatal(err)
				}
				wire, n = wire+len(ct), n+1
				if _, err := Decrypt(ctx, to.rand, to.store.Stores(), from.addr, typ, ct); err != nil {
					b.Fatal(err)
				}
				from, to = to, from
			}
		})
	}
}

// BenchmarkPrimitivesSameChain is the floor under BenchmarkRatchetSameChain:
// the same key derivations, cipher and MAC, with no session logic.
func BenchmarkPrimitivesSameChain(b *testing.B) {
	alice, bob := establishedPair(b, true)
	var ck [32]byte
	msg := bytes.Repeat([]byte("x"), 200)
	a, c := alice.id.PublicKey(), bob.id.PublicKey()
	b.ReportAllocs()
	start := cpuTime(b)
	defer func() { reportCPU(b, start) }()
	for b.Loop() {
		for side := 0; side < 2; side++ {
			seed, next := chainStep(&ck)
			ck = next
			mk, _ := deriveMessageKeys(&seed, nil)
			body := cbcEncrypt(&mk.cipherKey, &mk.iv, msg)
			if side == 1 {
				if _, err := cbcDecrypt(&mk.cipherKey, &mk.iv, body); err != nil {
					b.Fatal(err)
				}
			}
			m := make([]byte, 0, 300)
			m = append(m, 0x44)
			m = append(m, body...)
			_ = messageMAC(&mk.macKey, a, c, append(m, make([]byte, 40)...))
		}
	}
}
