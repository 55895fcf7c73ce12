package signalpeer_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"sotto/interop/signalpeer"
)

// env is one scenario run: peer A of one implementation, peer B of another (or the
// same), and a way to start more peers of B's implementation.
type env struct {
	t      *testing.T
	ctx    context.Context
	a, b   *signalpeer.Peer
	implA  implementation
	implB  implementation
	nextID uint32
}

func newEnv(t *testing.T, implA, implB implementation) *env {
	a := implA.start(t)
	b := implB.start(t)
	return &env{t: t, ctx: t.Context(), a: a, b: b, implA: implA, implB: implB}
}

// regID hands out distinct registration ids.
func (e *env) regID() uint32 {
	e.nextID++
	return e.nextID
}

func addr(name string) signalpeer.Address { return signalpeer.Address{Name: name, DeviceID: 1} }

func (e *env) create(p *signalpeer.Peer, a signalpeer.Address, prekeys int) []byte {
	e.t.Helper()
	id, err := p.Create(e.ctx, a, e.regID(), prekeys)
	if err != nil {
		e.t.Fatalf("create %s on %s: %v", a, p.Label(), err)
	}
	if len(id) != 33 || id[0] != 5 {
		e.t.Fatalf("create %s on %s: identity key %x is not a serialized Curve25519 key", a, p.Label(), id)
	}
	return id
}

func (e *env) bundle(p *signalpeer.Peer, a signalpeer.Address, oneTime bool) *signalpeer.Bundle {
	e.t.Helper()
	b, err := p.Bundle(e.ctx, a, oneTime)
	if err != nil {
		e.t.Fatalf("bundle %s on %s: %v", a, p.Label(), err)
	}
	return b
}

func (e *env) process(p *signalpeer.Peer, l, r signalpeer.Address, b *signalpeer.Bundle) {
	e.t.Helper()
	if err := p.ProcessBundle(e.ctx, l, r, b); err != nil {
		e.t.Fatalf("%s processes bundle of %s on %s: %v", l, r, p.Label(), err)
	}
}

func (e *env) encrypt(p *signalpeer.Peer, l, r signalpeer.Address, pt []byte) signalpeer.Message {
	e.t.Helper()
	m, err := p.Encrypt(e.ctx, l, r, pt)
	if err != nil {
		e.t.Fatalf("%s encrypts to %s on %s: %v", l, r, p.Label(), err)
	}
	if m.Type != signalpeer.TypeSignal && m.Type != signalpeer.TypePreKey {
		e.t.Fatalf("%s encrypts to %s on %s: message type %d", l, r, p.Label(), m.Type)
	}
	return m
}

// decrypt decrypts m and checks that it yields want.
func (e *env) decrypt(p *signalpeer.Peer, l, r signalpeer.Address, m signalpeer.Message, want []byte) {
	e.t.Helper()
	got, err := p.Decrypt(e.ctx, l, r, m)
	if err != nil {
		e.t.Fatalf("%s decrypts type %d from %s on %s: %v", l, m.Type, r, p.Label(), err)
	}
	if !bytes.Equal(got, want) {
		e.t.Fatalf("%s decrypts from %s on %s: got %q, want %q", l, r, p.Label(), got, want)
	}
}

// send carries one message from (pf, from) to (pt, to) and checks it arrives intact.
func (e *env) send(pf *signalpeer.Peer, from signalpeer.Address, pt *signalpeer.Peer, to signalpeer.Address, text string) signalpeer.Message {
	e.t.Helper()
	m := e.encrypt(pf, from, to, []byte(text))
	e.decrypt(pt, to, from, m, []byte(text))
	return m
}

// connect has (pa, la) start a session with (pb, lb) from a one-time bundle and
// exchanges one message each way.
func (e *env) connect(pa *signalpeer.Peer, la signalpeer.Address, pb *signalpeer.Peer, lb signalpeer.Address) {
	e.t.Helper()
	e.process(pa, la, lb, e.bundle(pb, lb, true))
	m := e.send(pa, la, pb, lb, fmt.Sprintf("hello %s, %s here", lb.Name, la.Name))
	if m.Type != signalpeer.TypePreKey {
		e.t.Fatalf("first message %s -> %s has type %d, want %d", la, lb, m.Type, signalpeer.TypePreKey)
	}
	r := e.send(pb, lb, pa, la, fmt.Sprintf("hello %s", la.Name))
	if r.Type != signalpeer.TypeSignal {
		e.t.Fatalf("reply %s -> %s has type %d, want %d", lb, la, r.Type, signalpeer.TypeSignal)
	}
}

// wantKind checks that err is a peer error of the given kind.
func (e *env) wantKind(err error, kind signalpeer.Kind, what string) {
	e.t.Helper()
	if got := signalpeer.KindOf(err); got != kind {
		e.t.Fatalf("%s: got error %v (kind %q), want kind %q", what, err, got, kind)
	}
}

func (e *env) hasSession(p *signalpeer.Peer, l, r signalpeer.Address) bool {
	e.t.Helper()
	ok, err := p.HasSession(e.ctx, l, r)
	if err != nil {
		e.t.Fatalf("has_session %s -> %s on %s: %v", l, r, p.Label(), err)
	}
	return ok
}
