package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"sotto/signal/fingerprint"
	"sotto/signal/session"
)

// signedPreKeyID is the id of each party's one signed prekey.
const signedPreKeyID = 1

// maxDevice is the highest device id, as libsignal's addresses allow.
const maxDevice = 127

// party is one device of one user: its stores and its supply of one-time prekeys.
type party struct {
	addr       session.Address
	regID      uint32
	identity   *session.IdentityKeyPair
	trust      *trustStore
	mem        *session.MemoryStore
	prekeys    uint32 // one-time prekeys made: EC ids and Kyber ids 1..prekeys
	handedOut  uint32
	lastResort uint32 // the last-resort Kyber prekey's id
}

func (pa *party) stores() session.Stores {
	s := pa.mem.Stores()
	s.Identity = pa.trust
	return s
}

// peer holds every party of this process.
type peer struct {
	rand    io.Reader
	now     func() time.Time
	parties map[string]map[uint32]*party // name -> device -> party
	ops     map[string]func(context.Context, *request) (map[string]any, error)
}

func newPeer(rand io.Reader, now func() time.Time) *peer {
	p := &peer{rand: rand, now: now, parties: make(map[string]map[uint32]*party)}
	p.ops = map[string]func(context.Context, *request) (map[string]any, error){
		"create":         p.create,
		"bundle":         p.bundle,
		"process_bundle": p.processBundle,
		"encrypt":        p.encrypt,
		"decrypt":        p.decrypt,
		"fingerprint":    p.fingerprint,
		"has_session":    p.hasSession,
		"trust":          p.trustPeer,
	}
	p.addSealedOps()
	return p
}

// local finds the request's local party: the named device, else the only device of
// that name, else its device 1.
func (p *peer) local(req *request) (*party, error) {
	if req.Name == "" {
		return nil, badArg("name: want a non-empty string")
	}
	devices := p.parties[req.Name]
	if len(devices) == 0 {
		return nil, badArg("no party named %q", req.Name)
	}
	if req.DeviceID != nil {
		d, err := intArg("device_id", req.DeviceID, 0, 1, maxDevice)
		if err != nil {
			return nil, err
		}
		pa, ok := devices[uint32(d)]
		if !ok {
			return nil, badArg("party %q has no device %d", req.Name, d)
		}
		return pa, nil
	}
	if len(devices) == 1 {
		for _, pa := range devices {
			return pa, nil
		}
	}
	pa, ok := devices[1]
	if !ok {
		return nil, badArg("party %q has several devices: name one", req.Name)
	}
	return pa, nil
}

// remote returns the request's remote address.
func remote(req *request) (session.Address, error) {
	if req.Peer == "" {
		return session.Address{}, badArg("peer: want a non-empty string")
	}
	d, err := intArg("peer_device_id", req.PeerDeviceID, 1, 1, maxDevice)
	if err != nil {
		return session.Address{}, err
	}
	return session.Address{Name: req.Peer, DeviceID: uint32(d)}, nil
}

func (p *peer) create(_ context.Context, req *request) (map[string]any, error) {
	if req.Name == "" {
		return nil, badArg("name: want a non-empty string")
	}
	if req.RegistrationID == nil {
		return nil, badArg("registration_id: missing")
	}
	regID, err := intArg("registration_id", req.RegistrationID, 0, 1, 16380)
	if err != nil {
		return nil, err
	}
	dev, err := intArg("device_id", req.DeviceID, 1, 1, maxDevice)
	if err != nil {
		return nil, err
	}
	n, err := intArg("prekeys", req.PreKeys, 10, 0, 10000)
	if err != nil {
		return nil, err
	}
	devices := p.parties[req.Name]
	if _, ok := devices[uint32(dev)]; ok {
		return nil, badArg("party %s.%d exists", req.Name, dev)
	}
	// All devices of one user share the user's identity key, as in Signal.
	var identity *session.IdentityKeyPair
	for _, sibling := range devices {
		identity = sibling.identity
		break
	}
	if identity == nil {
		if identity, err = session.GenerateIdentityKeyPair(p.rand); err != nil {
			return nil, err
		}
	}
	pa := &party{
		addr:       session.Address{Name: req.Name, DeviceID: uint32(dev)},
		regID:      uint32(regID),
		identity:   identity,
		trust:      newTrustStore(identity, uint32(regID)),
		mem:        session.NewMemoryStore(identity, uint32(regID)),
		prekeys:    uint32(n),
		lastResort: uint32(n) + 1,
	}
	if err := pa.makePreKeys(p.rand, p.now()); err != nil {
		return nil, err
	}
	if devices == nil {
		devices = make(map[uint32]*party)
		p.parties[req.Name] = devices
	}
	devices[uint32(dev)] = pa
	return map[string]any{"identity_key": identity.PublicKey().Serialize()}, nil
}

// makePreKeys stores the party's one-time EC and Kyber prekeys, its signed prekey and
// its last-resort Kyber prekey.
func (pa *party) makePreKeys(rand io.Reader, now time.Time) error {
	ctx := context.Background()
	ecs, err := session.GeneratePreKeys(rand, 1, int(pa.prekeys))
	if err != nil {
		return err
	}
	for _, r := range ecs {
		if err := pa.mem.StorePreKey(ctx, r.ID(), r); err != nil {
			return err
		}
	}
	for id := uint32(1); id <= pa.prekeys+1; id++ {
		r, err := session.GenerateKyberPreKey(rand, pa.identity, id, now)
		if err != nil {
			return err
		}
		if err := pa.mem.StoreKyberPreKey(ctx, id, r, id == pa.lastResort); err != nil {
			return err
		}
	}
	spk, err := session.GenerateSignedPreKey(rand, pa.identity, signedPreKeyID, now)
	if err != nil {
		return err
	}
	return pa.mem.StoreSignedPreKey(ctx, signedPreKeyID, spk)
}

func (p *peer) bundle(ctx context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	spk, err := pa.mem.LoadSignedPreKey(ctx, signedPreKeyID)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"registration_id":         pa.regID,
		"device_id":               pa.addr.DeviceID,
		"identity_key":            pa.identity.PublicKey().Serialize(),
		"signed_prekey_id":        spk.ID(),
		"signed_prekey":           spk.PublicKey(),
		"signed_prekey_signature": spk.Signature(),
	}
	kyberID := pa.lastResort
	if req.OneTime == nil || *req.OneTime {
		if pa.handedOut >= pa.prekeys {
			return nil, badArg("all %d one-time prekeys were handed out", pa.prekeys)
		}
		pa.handedOut++
		id := pa.handedOut
		pk, err := pa.mem.LoadPreKey(ctx, id)
		if err != nil {
			return nil, err
		}
		out["prekey_id"] = id
		out["prekey"] = pk.PublicKey()
		kyberID = id
	}
	kpk, err := pa.mem.LoadKyberPreKey(ctx, kyberID)
	if err != nil {
		return nil, err
	}
	out["kyber_prekey_id"] = kyberID
	out["kyber_prekey"] = kpk.PublicKey()
	out["kyber_prekey_signature"] = kpk.Signature()
	return out, nil
}

func (p *peer) processBundle(ctx context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	addr, err := remote(req)
	if err != nil {
		return nil, err
	}
	b := req.Bundle
	if b == nil {
		return nil, badArg("bundle: missing")
	}
	sb := &session.PreKeyBundle{
		RegistrationID:        b.RegistrationID,
		DeviceID:              b.DeviceID,
		SignedPreKeyID:        b.SignedPreKeyID,
		SignedPreKey:          b.SignedPreKey,
		SignedPreKeySignature: b.SignedPreKeySignature,
		KyberPreKeyID:         b.KyberPreKeyID,
		KyberPreKey:           b.KyberPreKey,
		KyberPreKeySignature:  b.KyberPreKeySignature,
		IdentityKey:           b.IdentityKey,
	}
	if b.PreKeyID != nil {
		sb.HasPreKey, sb.PreKeyID, sb.PreKey = true, *b.PreKeyID, b.PreKey
	}
	if err := session.ProcessPreKeyBundle(ctx, p.rand, pa.stores(), addr, sb, p.now()); err != nil {
		if kindOf(err) == "internal" {
			// Anything the session layer rejects in a bundle is a bad argument.
			return nil, &kindError{kind: "invalid_argument", err: err}
		}
		return nil, err
	}
	return nil, nil
}

func (p *peer) encrypt(ctx context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	addr, err := remote(req)
	if err != nil {
		return nil, err
	}
	if req.Plaintext == nil {
		return nil, badArg("plaintext: missing")
	}
	typ, ct, err := session.Encrypt(ctx, pa.stores(), addr, req.Plaintext, p.now())
	if err != nil {
		return nil, err
	}
	return map[string]any{"type": typ, "ciphertext": ct}, nil
}

func (p *peer) decrypt(ctx context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	addr, err := remote(req)
	if err != nil {
		return nil, err
	}
	if req.Type == nil || (*req.Type != session.MessageTypeSignal && *req.Type != session.MessageTypePreKey) {
		return nil, badArg("type: want 2 or 3")
	}
	if req.Ciphertext == nil {
		return nil, badArg("ciphertext: missing")
	}
	pt, err := session.Decrypt(ctx, p.rand, pa.stores(), addr, int(*req.Type), req.Ciphertext)
	if err != nil {
		return nil, err
	}
	if pt == nil {
		pt = []byte{}
	}
	return map[string]any{"plaintext": pt}, nil
}

func (p *peer) fingerprint(_ context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	if req.Peer == "" {
		return nil, badArg("peer: want a non-empty string")
	}
	if req.LocalID == nil || req.RemoteID == nil {
		return nil, badArg("local_id and remote_id: missing")
	}
	iterations, err := intArg("iterations", req.Iterations, fingerprint.Iterations, 1, 1000000)
	if err != nil {
		return nil, err
	}
	version, err := intArg("version", req.Version, fingerprint.Version, 0, 0xffff)
	if err != nil {
		return nil, err
	}
	var dev uint32
	if req.PeerDeviceID != nil {
		d, err := intArg("peer_device_id", req.PeerDeviceID, 0, 1, maxDevice)
		if err != nil {
			return nil, err
		}
		dev = uint32(d)
	}
	remoteKey := pa.trust.anyIdentity(req.Peer, dev)
	if remoteKey == nil {
		return nil, &kindError{kind: "no_session", err: fmt.Errorf("no identity key known for %s", req.Peer)}
	}
	f, err := fingerprint.New(int(version), int(iterations), req.LocalID, pa.identity.PublicKey().Serialize(), req.RemoteID, remoteKey)
	if err != nil {
		return nil, err
	}
	scannable, err := f.Scannable()
	if err != nil {
		return nil, err
	}
	return map[string]any{"displayable": f.Displayable(), "scannable": scannable}, nil
}

func (p *peer) hasSession(ctx context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	addr, err := remote(req)
	if err != nil {
		return nil, err
	}
	rec, err := pa.mem.LoadSession(ctx, addr)
	if err != nil {
		return nil, err
	}
	return map[string]any{"exists": rec != nil && rec.HasCurrentState()}, nil
}

func (p *peer) trustPeer(_ context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	if req.Peer == "" {
		return nil, badArg("peer: want a non-empty string")
	}
	pa.trust.accept(req.Peer)
	return nil, nil
}
