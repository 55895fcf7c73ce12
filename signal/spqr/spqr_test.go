package spqr

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// peer is one side of an SPQR session in a test.
type peer struct {
	state []byte
}

func newPair(t testing.TB, min Version) (a, b *peer) {
	t.Helper()
	key := bytes.Repeat([]byte{0x42}, 32)
	sa, err := InitialState(Params{Direction: AToB, Version: Version1, MinVersion: min, AuthKey: key})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := InitialState(Params{Direction: BToA, Version: Version1, MinVersion: min, AuthKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return &peer{sa}, &peer{sb}
}

type sent struct {
	msg, key []byte
}

func (p *peer) send(t testing.TB, rnd io.Reader) sent {
	t.Helper()
	s, msg, key, err := Send(p.state, rnd)
	if err != nil {
		t.Fatal(err)
	}
	p.state = s
	return sent{msg, key}
}

func (p *peer) recv(t testing.TB, m sent) {
	t.Helper()
	s, key, err := Recv(p.state, m.msg)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	if !bytes.Equal(key, m.key) {
		t.Fatalf("keys differ: sent %x, received %x", m.key, key)
	}
	p.state = s
}

func epochOf(t testing.TB, p *peer) uint64 {
	t.Helper()
	s, err := unmarshal(p.state)
	if err != nil {
		t.Fatal(err)
	}
	if s.Chain == nil {
		return 0
	}
	return s.Chain.CurrentEpoch
}

// conversation runs rounds in which each side sends a random number of
// messages, a share of them lost and the rest delivered in random order.
func conversation(t testing.TB, rnd *rand.ChaCha8, rounds int, loss float64, each func(from string, m sent)) (a, b *peer) {
	a, b = newPair(t, Version1)
	r := rand.New(rnd)
	for range rounds {
		for _, dir := range []struct {
			name     string
			from, to *peer
		}{{"a", a, b}, {"b", b, a}} {
			var ms []sent
			for range 1 + r.IntN(4) {
				m := dir.from.send(t, rnd)
				if each != nil {
					each(dir.name, m)
				}
				if r.Float64() >= loss {
					ms = append(ms, m)
				}
			}
			r.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
			for _, m := range ms {
				dir.to.recv(t, m)
			}
		}
	}
	return a, b
}

// TestBraidEpochs: a long conversation with loss and reordering goes
// through many epochs, and every delivered message's key agrees.
func TestBraidEpochs(t *testing.T) {
	a, b := conversation(t, rand.NewChaCha8([32]byte{1}), 400, 0.2, nil)
	ea, eb := epochOf(t, a), epochOf(t, b)
	if ea < 5 || eb < 5 {
		t.Fatalf("only epochs %d and %d reached", ea, eb)
	}
	t.Logf("epochs reached: %d, %d", ea, eb)
}

// TestBraidOneWay: one side sends, the other only receives; messages still
// decrypt (the epoch cannot advance without replies).
func TestBraidOneWay(t *testing.T) {
	a, b := newPair(t, Version1)
	rnd := rand.NewChaCha8([32]byte{2})
	for range 100 {
		b.recv(t, a.send(t, rnd))
	}
}

// TestBraidLateMessageAcrossEpochs: a message held back while several
// epochs complete still decrypts afterwards (its epoch's receiving chain is
// kept until the receiver sends in a newer epoch).
func TestBraidLateMessageAcrossEpochs(t *testing.T) {
	a, b := newPair(t, Version1)
	rnd := rand.NewChaCha8([32]byte{3})
	late := a.send(t, rnd)
	for range 300 {
		b.recv(t, a.send(t, rnd))
		a.recv(t, b.send(t, rnd))
	}
	if epochOf(t, b) < 4 {
		t.Fatalf("epoch %d", epochOf(t, b))
	}
	_, _, err := Recv(b.state, late.msg)
	if !errors.Is(err, ErrEpoch) {
		t.Fatalf("a message of a dropped epoch: %v, want ErrEpoch", err)
	}
	// Within the kept window it works: hold one back for a single epoch.
	a, b = newPair(t, Version1)
	var held sent
	for i := range 80 {
		m := a.send(t, rnd)
		if i == 40 {
			held = m
		} else {
			b.recv(t, m)
		}
		if i%2 == 0 {
			a.recv(t, b.send(t, rnd))
		}
		if i == 44 {
			b.recv(t, held)
		}
	}
}

// TestReplayRefused: the same message twice fails the second time.
func TestReplayRefused(t *testing.T) {
	a, b := newPair(t, Version1)
	rnd := rand.NewChaCha8([32]byte{4})
	b.recv(t, a.send(t, rnd))
	m := a.send(t, rnd)
	b.recv(t, m)
	if _, _, err := Recv(b.state, m.msg); !errors.Is(err, ErrKeyUsed) {
		t.Fatalf("replay: %v, want ErrKeyUsed", err)
	}
}

// TestDowngradeRefused: with minimum version 1, a peer whose messages carry
// no SPQR data is refused; with minimum 0 SPQR switches off (libsignal 0.90's
// behaviour), which is the downgrade an attacker stripping the field could
// force.
func TestDowngradeRefused(t *testing.T) {
	_, b := newPair(t, Version1)
	if _, _, err := Recv(b.state, nil); !errors.Is(err, ErrMinimumVersion) {
		t.Fatalf("empty pq_ratchet with minimum 1: %v, want ErrMinimumVersion", err)
	}
	_, b = newPair(t, Version0)
	s, key, err := Recv(b.state, nil)
	if err != nil || s != nil || key != nil {
		t.Fatalf("minimum 0: %x %x %v, want SPQR off", s, key, err)
	}
	// After negotiation, a version-0 message is a mismatch.
	a, b := newPair(t, Version1)
	rnd := rand.NewChaCha8([32]byte{5})
	b.recv(t, a.send(t, rnd))
	if _, _, err := Recv(b.state, nil); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("after negotiation: %v, want ErrVersionMismatch", err)
	}
}

// TestTamperedChunkRefused: every message is first delivered with its last
// chunk byte flipped. When that chunk would complete a header or a
// ciphertext, the authenticator refuses it (and the state is kept: the
// genuine message is then accepted).
func TestTamperedChunkRefused(t *testing.T) {
	a, b := newPair(t, Version1)
	rnd := rand.NewChaCha8([32]byte{6})
	var hdr, ct int
	try := func(to *peer, m sent) {
		bad := append([]byte(nil), m.msg...)
		if len(bad) > chunkSize+4 {
			bad[len(bad)-1] ^= 1
			_, _, err := Recv(to.state, bad)
			switch {
			case errors.Is(err, ErrMAC) && strings.Contains(err.Error(), "header"):
				hdr++
			case errors.Is(err, ErrMAC) && strings.Contains(err.Error(), "ciphertext"):
				ct++
			case err != nil && !errors.Is(err, ErrInvalidMessage):
				t.Fatalf("tampered: %v", err)
			}
		}
		to.recv(t, m)
	}
	for range 200 {
		try(b, a.send(t, rnd))
		try(a, b.send(t, rnd))
	}
	if hdr < 2 || ct < 2 {
		t.Fatalf("refused %d tampered headers and %d ciphertexts, want at least 2 each", hdr, ct)
	}
}

// TestLibcruxEncapsulationState: a state stored by libsignal between the two
// encapsulation phases (libcrux's 2,080-byte form, m last) is read when the
// header is stored with it, and the epoch completes.
func TestLibcruxEncapsulationState(t *testing.T) {
	a, b := newPair(t, Version1)
	rnd := rand.NewChaCha8([32]byte{8})
	converted := false
	for range 200 {
		b.recv(t, a.send(t, rnd))
		s, err := unmarshal(b.state)
		if err != nil {
			t.Fatal(err)
		}
		if cs := s.GetV1().GetCt1Sampled(); cs != nil && !converted {
			m := cs.Uc.Es[:32]
			cs.Uc.Es = append(bytes.Repeat([]byte{0xee}, libcruxEncapsStateSize-32), m...)
			b.state = marshal(s)
			converted = true
		}
		a.recv(t, b.send(t, rnd))
	}
	if !converted || epochOf(t, a) < 2 {
		t.Fatalf("converted %v, epoch %d", converted, epochOf(t, a))
	}
}
