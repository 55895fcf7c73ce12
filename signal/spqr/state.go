package spqr

import (
	"encoding/binary"
	"fmt"
	"slices"

	pb "sotto/signal/spqr/internal/statepb"
)

// Conversion of the Braid and the key chain to and from libsignal's stored
// layout (internal/statepb). Everything read is checked: sizes of keys and
// ciphertexts, the coder each phase needs and the lengths they decode.

func authToPB(a authenticator) *pb.Auth { return &pb.Auth{Root: a.root, Mac: a.mac} }

func authFromPB(p *pb.Auth) (authenticator, error) {
	if p == nil || len(p.Root) != 32 || len(p.Mac) != 32 {
		return authenticator{}, fmt.Errorf("%w: authenticator", ErrState)
	}
	return authenticator{root: p.Root, mac: p.Mac}, nil
}

func encToPB(e *encoder) *pb.Encoder {
	out := &pb.Encoder{Next: e.next}
	if e.polys[0] != nil {
		for _, p := range e.polys {
			out.Polys = append(out.Polys, u16s(p))
		}
		return out
	}
	for _, pts := range e.points {
		out.Points = append(out.Points, u16s(pts))
	}
	return out
}

func u16s(v []uint16) []byte {
	b := make([]byte, 0, 2*len(v))
	for _, x := range v {
		b = binary.BigEndian.AppendUint16(b, x)
	}
	return b
}

func fromU16s(b []byte) ([]uint16, bool) {
	if len(b)%2 != 0 {
		return nil, false
	}
	v := make([]uint16, len(b)/2)
	for i := range v {
		v[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return v, true
}

func encFromPB(p *pb.Encoder) (*encoder, error) {
	bad := fmt.Errorf("%w: encoder", ErrState)
	if p == nil {
		return nil, bad
	}
	e := &encoder{next: p.Next}
	switch {
	case len(p.Points) == columns && len(p.Polys) == 0:
		for c, b := range p.Points {
			v, ok := fromU16s(b)
			if !ok || len(v) > 1<<16 {
				return nil, bad
			}
			e.points[c] = v
		}
	case len(p.Polys) == columns && len(p.Points) == 0:
		for c, b := range p.Polys {
			v, ok := fromU16s(b)
			if !ok || len(v) == 0 || len(v) > 1<<16 {
				return nil, bad
			}
			e.polys[c] = v
		}
	default:
		return nil, bad
	}
	return e, nil
}

func decToPB(d *decoder) *pb.Decoder {
	out := &pb.Decoder{ValuesNeeded: uint32(d.needed), Columns: columns, Complete: d.complete}
	for _, pts := range d.points {
		b := make([]byte, 0, 4*len(pts))
		for _, p := range pts {
			b = binary.BigEndian.AppendUint16(b, p.x)
			b = binary.BigEndian.AppendUint16(b, p.y)
		}
		out.Points = append(out.Points, b)
	}
	return out
}

// decFromPB reads a decoder that must decode length bytes.
func decFromPB(p *pb.Decoder, length int) (*decoder, error) {
	bad := fmt.Errorf("%w: decoder", ErrState)
	if p == nil || len(p.Points) != columns || int(p.ValuesNeeded) != length/2 {
		return nil, bad
	}
	d := &decoder{needed: length / 2, complete: p.Complete}
	for c, b := range p.Points {
		if len(b)%4 != 0 || len(b)/4 > 2*d.necessary(c)+1 {
			return nil, bad
		}
		for i := 0; i < len(b); i += 4 {
			d.points[c] = append(d.points[c], point{binary.BigEndian.Uint16(b[i:]), binary.BigEndian.Uint16(b[i+2:])})
		}
		slices.SortStableFunc(d.points[c], func(a, b point) int { return int(a.x) - int(b.x) })
		d.points[c] = slices.CompactFunc(d.points[c], func(a, b point) bool { return a.x == b.x })
	}
	return d, nil
}

func braidToPB(b *braid) *pb.Braid {
	ko := func() *pb.KeysOnly { return &pb.KeysOnly{Epoch: b.epoch, Auth: authToPB(b.auth)} }
	out := &pb.Braid{}
	switch b.phase {
	case keysUnsampled:
		out.State = &pb.Braid_KeysUnsampled_{KeysUnsampled: &pb.Braid_KeysUnsampled{Uc: ko()}}
	case keysSampled:
		out.State = &pb.Braid_KeysSampled_{KeysSampled: &pb.Braid_KeysSampled{
			Uc: &pb.EkDk{Epoch: b.epoch, Auth: authToPB(b.auth), Ek: b.ek, Dk: b.dk}, SendingHdr: encToPB(b.enc)}}
	case headerSent:
		out.State = &pb.Braid_HeaderSent_{HeaderSent: &pb.Braid_HeaderSent{
			Uc: &pb.DkOnly{Epoch: b.epoch, Auth: authToPB(b.auth), Dk: b.dk}, SendingEk: encToPB(b.enc), ReceivingCt1: decToPB(b.dec)}}
	case ct1Received:
		out.State = &pb.Braid_Ct1Received_{Ct1Received: &pb.Braid_Ct1Received{
			Uc: &pb.DkCt1{Epoch: b.epoch, Auth: authToPB(b.auth), Dk: b.dk, Ct1: b.ct1}, SendingEk: encToPB(b.enc)}}
	case ekSentCt1Received:
		out.State = &pb.Braid_EkSentCt1Received_{EkSentCt1Received: &pb.Braid_EkSentCt1Received{
			Uc: &pb.DkCt1{Epoch: b.epoch, Auth: authToPB(b.auth), Dk: b.dk, Ct1: b.ct1}, ReceivingCt2: decToPB(b.dec)}}
	case noHeaderReceived:
		out.State = &pb.Braid_NoHeaderReceived_{NoHeaderReceived: &pb.Braid_NoHeaderReceived{Uc: ko(), ReceivingHdr: decToPB(b.dec)}}
	case headerReceived:
		out.State = &pb.Braid_HeaderReceived_{HeaderReceived: &pb.Braid_HeaderReceived{
			Uc: &pb.Hdr{Epoch: b.epoch, Auth: authToPB(b.auth), Hdr: b.hdr}, ReceivingEk: decToPB(b.dec)}}
	case ct1Sampled:
		out.State = &pb.Braid_Ct1Sampled_{Ct1Sampled: &pb.Braid_Ct1Sampled{
			Uc:         &pb.HdrEsCt1{Epoch: b.epoch, Auth: authToPB(b.auth), Hdr: b.hdr, Es: b.es, Ct1: b.ct1},
			SendingCt1: encToPB(b.enc), ReceivingEk: decToPB(b.dec)}}
	case ekReceivedCt1Sampled:
		out.State = &pb.Braid_EkReceivedCt1Sampled_{EkReceivedCt1Sampled: &pb.Braid_EkReceivedCt1Sampled{
			Uc:         &pb.EsEkCt1{Epoch: b.epoch, Auth: authToPB(b.auth), Es: b.es, Ek: b.ek, Ct1: b.ct1},
			SendingCt1: encToPB(b.enc)}}
	case ct1Acknowledged:
		out.State = &pb.Braid_Ct1Acknowledged_{Ct1Acknowledged: &pb.Braid_Ct1Acknowledged{
			Uc:          &pb.HdrEsCt1{Epoch: b.epoch, Auth: authToPB(b.auth), Hdr: b.hdr, Es: b.es, Ct1: b.ct1},
			ReceivingEk: decToPB(b.dec)}}
	case ct2Sampled:
		out.State = &pb.Braid_Ct2Sampled_{Ct2Sampled: &pb.Braid_Ct2Sampled{Uc: ko(), SendingCt2: encToPB(b.enc)}}
	}
	return out
}

// libcruxEncapsStateSize is the size of the encapsulation state libsignal
// stores (libcrux's r and e2, then m).
const libcruxEncapsStateSize = 2080

// libcruxState converts libsignal's encapsulation state to Sotto's (m ‖
// header) when the header is known: m is libcrux's last 32 bytes, and r and
// e2 follow from m and the header. Other states pass through unchanged.
func libcruxState(es, hdr []byte) []byte {
	if len(es) != libcruxEncapsStateSize || len(hdr) != mlkemHeaderSize {
		return es
	}
	out := make([]byte, 0, encapsStateSize)
	out = append(out, es[libcruxEncapsStateSize-32:]...)
	return append(out, hdr...)
}

// common is what every unchunked part carries.
type common interface {
	GetEpoch() uint64
	GetAuth() *pb.Auth
}

func braidFromPB(p *pb.Braid) (*braid, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: no braid", ErrState)
	}
	b := &braid{}
	var uc common
	var err error
	sized := func(v []byte, n int, what string) []byte {
		if err == nil && len(v) != n {
			err = fmt.Errorf("%w: %s of %d bytes", ErrState, what, len(v))
		}
		return v
	}
	enc := func(e *pb.Encoder) *encoder {
		var x *encoder
		if err == nil {
			x, err = encFromPB(e)
		}
		return x
	}
	dec := func(d *pb.Decoder, n int) *decoder {
		var x *decoder
		if err == nil {
			x, err = decFromPB(d, n)
		}
		return x
	}
	switch s := p.State.(type) {
	case *pb.Braid_KeysUnsampled_:
		b.phase, uc = keysUnsampled, s.KeysUnsampled.GetUc()
	case *pb.Braid_KeysSampled_:
		u := s.KeysSampled.GetUc()
		b.phase, uc = keysSampled, u
		b.ek, b.dk = sized(u.GetEk(), mlkemEKSize, "ek"), sized(u.GetDk(), mlkemDKSize, "dk")
		b.enc = enc(s.KeysSampled.GetSendingHdr())
	case *pb.Braid_HeaderSent_:
		u := s.HeaderSent.GetUc()
		b.phase, uc = headerSent, u
		b.dk = sized(u.GetDk(), mlkemDKSize, "dk")
		b.enc, b.dec = enc(s.HeaderSent.GetSendingEk()), dec(s.HeaderSent.GetReceivingCt1(), mlkemCt1Size)
	case *pb.Braid_Ct1Received_:
		u := s.Ct1Received.GetUc()
		b.phase, uc = ct1Received, u
		b.dk, b.ct1 = sized(u.GetDk(), mlkemDKSize, "dk"), sized(u.GetCt1(), mlkemCt1Size, "ct1")
		b.enc = enc(s.Ct1Received.GetSendingEk())
	case *pb.Braid_EkSentCt1Received_:
		u := s.EkSentCt1Received.GetUc()
		b.phase, uc = ekSentCt1Received, u
		b.dk, b.ct1 = sized(u.GetDk(), mlkemDKSize, "dk"), sized(u.GetCt1(), mlkemCt1Size, "ct1")
		b.dec = dec(s.EkSentCt1Received.GetReceivingCt2(), mlkemCt2Size+macSize)
	case *pb.Braid_NoHeaderReceived_:
		b.phase, uc = noHeaderReceived, s.NoHeaderReceived.GetUc()
		b.dec = dec(s.NoHeaderReceived.GetReceivingHdr(), mlkemHeaderSize+macSize)
	case *pb.Braid_HeaderReceived_:
		u := s.HeaderReceived.GetUc()
		b.phase, uc = headerReceived, u
		b.hdr = sized(u.GetHdr(), mlkemHeaderSize, "header")
		b.dec = dec(s.HeaderReceived.GetReceivingEk(), mlkemEKSize)
	case *pb.Braid_Ct1Sampled_:
		u := s.Ct1Sampled.GetUc()
		b.phase, uc = ct1Sampled, u
		b.hdr, b.ct1 = sized(u.GetHdr(), mlkemHeaderSize, "header"), sized(u.GetCt1(), mlkemCt1Size, "ct1")
		b.es = sized(libcruxState(u.GetEs(), b.hdr), encapsStateSize, "es")
		b.enc, b.dec = enc(s.Ct1Sampled.GetSendingCt1()), dec(s.Ct1Sampled.GetReceivingEk(), mlkemEKSize)
	case *pb.Braid_EkReceivedCt1Sampled_:
		u := s.EkReceivedCt1Sampled.GetUc()
		b.phase, uc = ekReceivedCt1Sampled, u
		b.es, b.ek, b.ct1 = sized(u.GetEs(), encapsStateSize, "es"), sized(u.GetEk(), mlkemEKSize, "ek"), sized(u.GetCt1(), mlkemCt1Size, "ct1")
		b.enc = enc(s.EkReceivedCt1Sampled.GetSendingCt1())
	case *pb.Braid_Ct1Acknowledged_:
		u := s.Ct1Acknowledged.GetUc()
		b.phase, uc = ct1Acknowledged, u
		b.hdr, b.ct1 = sized(u.GetHdr(), mlkemHeaderSize, "header"), sized(u.GetCt1(), mlkemCt1Size, "ct1")
		b.es = sized(libcruxState(u.GetEs(), b.hdr), encapsStateSize, "es")
		b.dec = dec(s.Ct1Acknowledged.GetReceivingEk(), mlkemEKSize)
	case *pb.Braid_Ct2Sampled_:
		b.phase, uc = ct2Sampled, s.Ct2Sampled.GetUc()
		b.enc = enc(s.Ct2Sampled.GetSendingCt2())
	default:
		return nil, fmt.Errorf("%w: no braid phase", ErrState)
	}
	if err != nil {
		return nil, err
	}
	if uc == nil || uc.GetEpoch() == 0 {
		return nil, fmt.Errorf("%w: braid epoch", ErrState)
	}
	b.epoch = uc.GetEpoch()
	if b.auth, err = authFromPB(uc.GetAuth()); err != nil {
		return nil, err
	}
	return b, nil
}

func limitsToPB(l limits) *pb.Limits { return &pb.Limits{MaxJump: l.maxJump, MaxOutOfOrder: l.maxOOO} }

func chainToPB(c *keyChain) *pb.KeyChain {
	out := &pb.KeyChain{Direction: pb.Dir(c.dir), CurrentEpoch: c.epoch, NextRoot: c.nextRoot, SendEpoch: c.sendEpoch, Limits: limitsToPB(c.limits)}
	for _, l := range c.links {
		h := func(x half) *pb.KeyChain_Link_Half {
			return &pb.KeyChain_Link_Half{Counter: x.ctr, Next: x.next, Skipped: x.skipped}
		}
		out.Links = append(out.Links, &pb.KeyChain_Link{Send: h(l.send), Recv: h(l.recv)})
	}
	return out
}

func chainFromPB(p *pb.KeyChain) (*keyChain, error) {
	bad := fmt.Errorf("%w: key chain", ErrState)
	if p == nil || p.Limits == nil || (p.Direction != pb.Dir_DIR_A_TO_B && p.Direction != pb.Dir_DIR_B_TO_A) ||
		len(p.NextRoot) != 32 || len(p.Links) == 0 || uint64(len(p.Links)) > p.CurrentEpoch+1 {
		return nil, bad
	}
	c := &keyChain{dir: Direction(p.Direction), epoch: p.CurrentEpoch, sendEpoch: p.SendEpoch, nextRoot: p.NextRoot,
		limits: limits{maxJump: p.Limits.MaxJump, maxOOO: p.Limits.MaxOutOfOrder}}
	for _, l := range p.Links {
		h := func(x *pb.KeyChain_Link_Half) (half, bool) {
			if x == nil || (len(x.Next) != 0 && len(x.Next) != 32) || len(x.Skipped)%skippedEntry != 0 {
				return half{}, false
			}
			return half{ctr: x.Counter, next: x.Next, skipped: x.Skipped}, true
		}
		s, ok1 := h(l.Send)
		r, ok2 := h(l.Recv)
		if !ok1 || !ok2 {
			return nil, bad
		}
		c.links = append(c.links, link{send: s, recv: r})
	}
	return c, nil
}
