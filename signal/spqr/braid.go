package spqr

import (
	"fmt"
	"io"
)

// The Braid (version 1): per epoch one side sends an ML-KEM-768 key (the
// header with its MAC, then the rest), the other a ciphertext (part 1 as
// soon as the header is in, then part 2 with its MAC); the roles swap each
// epoch. Every send emits one chunk; every receive may move the state on.

type phase int

// The eleven phases, numbered as the oneof of libsignal's stored state.
const (
	// Sending the key.
	keysUnsampled phase = iota + 1
	keysSampled
	headerSent
	ct1Received
	ekSentCt1Received
	// Sending the ciphertext.
	noHeaderReceived
	headerReceived
	ct1Sampled
	ekReceivedCt1Sampled
	ct1Acknowledged
	ct2Sampled
)

// braid is the Braid's state. Which fields are set depends on the phase.
type braid struct {
	phase phase
	epoch uint64
	auth  authenticator
	ek    []byte // keysSampled (to send); ekReceivedCt1Sampled (received)
	dk    []byte // the key side, from keysSampled to the end of the epoch
	hdr   []byte // headerReceived, ct1Sampled, ct1Acknowledged
	es    []byte // encapsulation state, ct1Sampled to ekReceivedCt1Sampled
	ct1   []byte
	enc   *encoder
	dec   *decoder
}

// epochKey is a new epoch's secret.
type epochKey struct {
	epoch  uint64
	secret []byte
}

func newBraid(authKey []byte, dir Direction) (*braid, error) {
	b := &braid{epoch: 1, auth: newAuthenticator(authKey, 1)}
	if dir == AToB {
		b.phase = keysUnsampled
		return b, nil
	}
	return b.waitHeader()
}

func (b *braid) waitHeader() (*braid, error) {
	d, err := newDecoder(mlkemHeaderSize + macSize)
	if err != nil {
		return nil, err
	}
	return &braid{phase: noHeaderReceived, epoch: b.epoch, auth: b.auth, dec: d}, nil
}

// send moves the state on by one outgoing message and returns it, with the
// epoch's secret when this message starts using one.
func (b *braid) send(rand io.Reader) (*braid, *message, *epochKey, error) {
	n := *b
	msg := &message{epoch: b.epoch}
	var key *epochKey
	switch b.phase {
	case keysUnsampled:
		k, err := mlkemGenerate(rand)
		if err != nil {
			return nil, nil, nil, err
		}
		enc, err := newEncoder(append(append([]byte(nil), k.hdr...), b.auth.macHdr(b.epoch, k.hdr)...))
		if err != nil {
			return nil, nil, nil, err
		}
		n.phase, n.ek, n.dk, n.enc = keysSampled, k.ek, k.dk, enc
		msg.typ = payHdr
	case keysSampled:
		msg.typ = payHdr
	case headerSent:
		msg.typ = payEk
	case ct1Received:
		msg.typ = payEkCt1Ack
	case ekSentCt1Received:
		msg.typ = payCt1Ack
	case noHeaderReceived, ct1Acknowledged:
		msg.typ = payNone
	case headerReceived:
		ct1, es, ss, err := mlkemEncaps1(b.hdr, rand)
		if err != nil {
			return nil, nil, nil, err
		}
		secret := epochSecret(b.epoch, ss)
		n.auth = b.auth
		n.auth.update(b.epoch, secret)
		enc, err := newEncoder(ct1)
		if err != nil {
			return nil, nil, nil, err
		}
		n.phase, n.es, n.ct1, n.enc = ct1Sampled, es, ct1, enc
		key = &epochKey{epoch: b.epoch, secret: secret}
		msg.typ = payCt1
	case ct1Sampled, ekReceivedCt1Sampled:
		msg.typ = payCt1
	case ct2Sampled:
		msg.typ = payCt2
	default:
		return nil, nil, nil, fmt.Errorf("%w: phase %d", ErrState, b.phase)
	}
	if msg.typ.hasChunk() {
		if n.enc == nil {
			return nil, nil, nil, fmt.Errorf("%w: no encoder", ErrState)
		}
		msg.chunk = n.enc.nextChunk()
	}
	return &n, msg, key, nil
}

// recv moves the state on by one incoming message. Messages of older epochs
// change nothing; messages of later epochs are refused, except the first
// message of the next epoch once this side has sent its ciphertext.
func (b *braid) recv(m *message) (*braid, *epochKey, error) {
	if m.epoch > b.epoch {
		if b.phase == ct2Sampled && m.epoch == b.epoch+1 {
			return &braid{phase: keysUnsampled, epoch: m.epoch, auth: b.auth}, nil, nil
		}
		return nil, nil, fmt.Errorf("%w: epoch %d in epoch %d", ErrInvalidMessage, m.epoch, b.epoch)
	}
	if m.epoch < b.epoch {
		return b, nil, nil
	}
	n := *b
	switch {
	case b.phase == keysSampled && m.typ == payCt1:
		d, err := newDecoder(mlkemCt1Size)
		if err != nil {
			return nil, nil, err
		}
		d.add(m.chunk)
		enc, err := newEncoder(b.ek)
		if err != nil {
			return nil, nil, err
		}
		n.phase, n.dec, n.enc, n.ek = headerSent, d, enc, nil
	case b.phase == headerSent && m.typ == payCt1:
		n.dec = b.dec.clone()
		n.dec.add(m.chunk)
		if ct1, ok := n.dec.message(); ok {
			n.phase, n.ct1, n.dec = ct1Received, ct1, nil
		}
	case b.phase == ct1Received && m.typ == payCt2:
		d, err := newDecoder(mlkemCt2Size + macSize)
		if err != nil {
			return nil, nil, err
		}
		d.add(m.chunk)
		n.phase, n.dec, n.enc = ekSentCt1Received, d, nil
	case b.phase == ekSentCt1Received && m.typ == payCt2:
		n.dec = b.dec.clone()
		n.dec.add(m.chunk)
		got, ok := n.dec.message()
		if !ok {
			break
		}
		ct2, tag := got[:mlkemCt2Size], got[mlkemCt2Size:]
		ss, err := mlkemDecaps(b.dk, b.ct1, ct2)
		if err != nil {
			return nil, nil, err
		}
		secret := epochSecret(b.epoch, ss)
		auth := b.auth
		auth.update(b.epoch, secret)
		if err := auth.verify(auth.macCt(b.epoch, append(append([]byte(nil), b.ct1...), ct2...)), tag); err != nil {
			return nil, nil, fmt.Errorf("%w: ciphertext of epoch %d", err, b.epoch)
		}
		next, err := (&braid{epoch: b.epoch + 1, auth: auth}).waitHeader()
		if err != nil {
			return nil, nil, err
		}
		return next, &epochKey{epoch: b.epoch, secret: secret}, nil
	case b.phase == noHeaderReceived && m.typ == payHdr:
		n.dec = b.dec.clone()
		n.dec.add(m.chunk)
		got, ok := n.dec.message()
		if !ok {
			break
		}
		hdr, tag := got[:mlkemHeaderSize], got[mlkemHeaderSize:]
		if err := b.auth.verify(b.auth.macHdr(b.epoch, hdr), tag); err != nil {
			return nil, nil, fmt.Errorf("%w: header of epoch %d", err, b.epoch)
		}
		d, err := newDecoder(mlkemEKSize)
		if err != nil {
			return nil, nil, err
		}
		n.phase, n.hdr, n.dec = headerReceived, hdr, d
	case (b.phase == ct1Sampled || b.phase == ct1Acknowledged) && (m.typ == payEk || m.typ == payEkCt1Ack):
		ack := m.typ == payEkCt1Ack || b.phase == ct1Acknowledged
		n.dec = b.dec.clone()
		n.dec.add(m.chunk)
		ek, ok := n.dec.message()
		if !ok {
			if ack {
				n.phase, n.enc = ct1Acknowledged, nil
			}
			break
		}
		if !ekMatchesHeader(ek, b.hdr) {
			return nil, nil, fmt.Errorf("%w: encapsulation key does not match its header", ErrInvalidMessage)
		}
		n.ek, n.hdr, n.dec = ek, nil, nil
		if !ack {
			n.phase = ekReceivedCt1Sampled
			break
		}
		return n.sendCt2()
	case b.phase == ekReceivedCt1Sampled && (m.typ == payCt1Ack || m.typ == payEkCt1Ack):
		return n.sendCt2()
	}
	return &n, nil, nil
}

// sendCt2 completes the encapsulation and starts sending part 2 with its MAC.
func (b *braid) sendCt2() (*braid, *epochKey, error) {
	ct2, err := mlkemEncaps2(b.ek, b.es)
	if err != nil {
		return nil, nil, err
	}
	tag := b.auth.macCt(b.epoch, append(append([]byte(nil), b.ct1...), ct2...))
	enc, err := newEncoder(append(ct2, tag...))
	if err != nil {
		return nil, nil, err
	}
	return &braid{phase: ct2Sampled, epoch: b.epoch, auth: b.auth, enc: enc}, nil, nil
}

func (d *decoder) clone() *decoder {
	c := *d
	for i := range c.points {
		c.points[i] = append([]point(nil), d.points[i]...)
	}
	return &c
}
