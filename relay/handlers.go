package relay

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"sotto/wire"
)

// Limits on what clients may store.
const (
	maxIdentityKey   = 128
	maxPublicKey     = 2048 // Kyber-1024 public keys are 1569 bytes
	maxSignature     = 256
	maxPreKeysUpload = 500
	maxDeviceName    = 64
	maxMessageID     = 64
	maxRecipients    = 64
	maxAckIDs        = 1024
	maxProvisioning  = 64 << 10
)

// handle answers req on the general path (in the read turn, in order).
func (c *conn) handle(req *wire.Request) *wire.Response {
	resp := &wire.Response{Id: req.Id}
	free, err := c.charge(req)
	if err == nil {
		err = c.dispatch(req, resp)
	}
	if free {
		c.releaseFreeAck(req.GetAck().GetEnvelopeIds())
	}
	if err != nil {
		resp.Body = nil
		errorResponse(resp, err)
		c.s.metrics.countError(resp.Code)
		if resp.Code == wire.ErrorCode_INTERNAL {
			c.s.log.Error("request failed", "device", c.dev.String(), "err", err)
		} else {
			c.s.log.Debug("request rejected", "device", c.dev.String(), "code", resp.Code.String(), "err", err)
		}
	}
	return resp
}

// charge takes req's token from the connection's request budget. An Ack
// whose ids were all pushed on this connection and are not yet acked is
// free (claimFreeAck; the caller releases the claim when the Ack
// completes): it only releases what the relay sent, once per envelope, so
// a device draining a backlog is never refused its acks (which would fill
// the delivery window and stop delivery).
func (c *conn) charge(req *wire.Request) (free bool, err error) {
	if a := req.GetAck(); a != nil && c.authed && c.claimFreeAck(a.EnvelopeIds) {
		return true, nil
	}
	if ok, wait := c.bucket.take(c.s.cfg.DeviceRate, c.s.cfg.Now()); !ok {
		return false, &RateError{RetryAfter: wait}
	}
	return false, nil
}

// badRequest is ErrBadRequest with a reason the client is shown (see
// ReasonError): write only what the relay knows about this request.
func badRequest(format string, args ...any) error {
	return withReason(ErrBadRequest, format, args...)
}

// ---- enrollment and authentication ----

func (c *conn) enroll(r *wire.EnrollRequest) (*wire.EnrollResponse, error) {
	nonce := c.takeNonce()
	if c.authed {
		return nil, badRequest("already authenticated")
	}
	if err := c.s.ipLimit.allow(c.ip, c.s.cfg.Now()); err != nil {
		return nil, err
	}
	username, err := NormalizeUsername(r.Username)
	if err != nil {
		return nil, err
	}
	if err := checkDeviceKeys(r.DeviceKey, r.IdentityKey, r.DeviceName); err != nil {
		return nil, err
	}
	keys, err := convertPreKeys(r.Prekeys, true)
	if err != nil {
		return nil, err
	}
	seat, err := seatHash(r.ActivationCode)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(r.DeviceKey, wire.EnrollTranscript(nonce, r.Username, r.DeviceKey, r.IdentityKey, r.RegistrationId), r.Signature) {
		return nil, ErrBadSignature
	}
	orgKey, err := c.s.checkEnrollment(c.ctx, r, username, seat)
	if err != nil {
		return nil, err
	}
	var id AccountID
	copy(id[:], randomBytes(len(id)))
	leaf, err := c.s.logLeaf(username, r.IdentityKey, r.IdentityCertificate)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	acct, dev, err := c.s.dir.Enroll(c.ctx, NewAccount{
		CodeHash: seat, ID: id, Username: username, IdentityKey: r.IdentityKey,
		Device:  Device{DeviceKey: r.DeviceKey, RegistrationID: r.RegistrationId, Name: r.DeviceName},
		PreKeys: keys, LogLeaf: leaf, Certificate: r.IdentityCertificate, OrgKey: orgKey,
	}, c.s.cfg.Now())
	if err != nil {
		return nil, err
	}
	if orgKey != nil {
		c.s.log.Info("organization created by its first admin device", "account", acct.ID.String())
	}
	c.s.log.Info("enrolled account", "account", acct.ID.String())
	c.becomeDevice(acct, dev)
	return &wire.EnrollResponse{AccountId: acct.ID[:], DeviceId: dev.Addr.Device, Username: acct.Username,
		SubscriptionExpiresMs: acct.Expires.UnixMilli(), LogPublicKey: c.s.logPublicKey()}, nil
}

func checkDeviceKeys(deviceKey, identityKey []byte, name string) error {
	if len(deviceKey) != ed25519.PublicKeySize {
		return badRequest("device key must be an Ed25519 public key")
	}
	if len(identityKey) == 0 || len(identityKey) > maxIdentityKey {
		return badRequest("bad identity key size")
	}
	if len(name) > maxDeviceName {
		return badRequest("device name too long")
	}
	return nil
}

func (c *conn) authenticate(r *wire.AuthenticateRequest) (*wire.AuthenticateResponse, error) {
	nonce := c.takeNonce()
	if c.authed {
		return nil, badRequest("already authenticated")
	}
	fail := func(err error) (*wire.AuthenticateResponse, error) {
		c.s.metrics.authFailures.Add(1)
		if lerr := c.s.ipLimit.allowAddr(c.ip, c.s.cfg.Now()); lerr != nil {
			return nil, lerr
		}
		return nil, err
	}
	username, err := NormalizeUsername(r.Username)
	if err != nil {
		return fail(ErrBadSignature)
	}
	acct, err := c.s.dir.AccountByName(c.ctx, username)
	if errors.Is(err, ErrNotFound) {
		return fail(ErrBadSignature)
	}
	if err != nil {
		return nil, err
	}
	dev, err := c.s.dir.Device(c.ctx, DeviceAddr{Account: acct.ID, Device: r.DeviceId})
	if errors.Is(err, ErrNotFound) {
		return fail(ErrBadSignature)
	}
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(dev.DeviceKey, wire.AuthTranscript(nonce, r.Username, r.DeviceId), r.Signature) {
		return fail(ErrBadSignature)
	}
	if acct.Revoked || dev.Revoked {
		return nil, ErrRevoked
	}
	c.becomeDevice(acct, dev)
	now := c.s.cfg.Now()
	return &wire.AuthenticateResponse{AccountId: acct.ID[:], SubscriptionExpiresMs: acct.Expires.UnixMilli(),
		SubscriptionExpired: !now.Before(acct.Expires)}, nil
}

// ---- device linking ----

func (c *conn) provision() (*wire.ProvisionResponse, error) {
	if c.provAddr != "" {
		return &wire.ProvisionResponse{Address: c.provAddr}, nil
	}
	addr := randomToken(16)
	c.s.mu.Lock()
	c.s.prov[addr] = c
	c.provAddr = addr
	c.provisioning.Store(true)
	c.s.mu.Unlock()
	c.provisioned()
	return &wire.ProvisionResponse{Address: addr}, nil
}

func (c *conn) linkToken() (*wire.LinkTokenResponse, error) {
	tok := randomToken(32)
	exp := c.s.cfg.Now().Add(c.s.cfg.LinkTokenTTL)
	if err := c.s.dir.CreateLinkToken(c.ctx, c.dev.Account, hashToken(tok), exp); err != nil {
		return nil, err
	}
	return &wire.LinkTokenResponse{Token: tok, ExpiresMs: exp.UnixMilli()}, nil
}

func (c *conn) sendProvisioning(r *wire.SendProvisioningRequest) error {
	if len(r.Body) == 0 || len(r.Body) > maxProvisioning {
		return badRequest("bad provisioning message size")
	}
	c.s.mu.Lock()
	dst := c.s.prov[r.Address]
	c.s.mu.Unlock()
	if dst == nil {
		return ErrNotFound
	}
	if err := dst.push(&wire.Push{Body: &wire.Push_Provisioning{Provisioning: &wire.ProvisioningMessage{Body: r.Body}}}); err != nil {
		return fmt.Errorf("%w: provisioning channel closed", ErrNotFound)
	}
	dst.approvalPushed()
	return nil
}

func (c *conn) linkDevice(r *wire.LinkDeviceRequest) (*wire.EnrollResponse, error) {
	nonce := c.takeNonce()
	if c.authed {
		return nil, badRequest("already authenticated")
	}
	if err := c.s.ipLimit.allow(c.ip, c.s.cfg.Now()); err != nil {
		return nil, err
	}
	if err := checkDeviceKeys(r.DeviceKey, r.IdentityKey, r.DeviceName); err != nil {
		return nil, err
	}
	keys, err := convertPreKeys(r.Prekeys, true)
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(r.DeviceKey, wire.LinkTranscript(nonce, r.LinkToken, r.DeviceKey, r.IdentityKey, r.RegistrationId), r.Signature) {
		return nil, ErrBadSignature
	}
	acct, dev, err := c.s.dir.LinkDevice(c.ctx, hashToken(r.LinkToken), r.IdentityKey,
		Device{DeviceKey: r.DeviceKey, RegistrationID: r.RegistrationId, Name: r.DeviceName},
		keys, c.s.cfg.MaxDevices, c.s.cfg.Now())
	if err != nil {
		return nil, err
	}
	c.s.log.Info("linked device", "device", dev.Addr.String())
	c.s.cache.invalidate(acct.ID)
	c.becomeDevice(acct, dev)
	return &wire.EnrollResponse{AccountId: acct.ID[:], DeviceId: dev.Addr.Device, Username: acct.Username,
		SubscriptionExpiresMs: acct.Expires.UnixMilli(), LogPublicKey: c.s.logPublicKey()}, nil
}

func (c *conn) removeDevice(id uint32) error {
	if id == 0 {
		return badRequest("no device id")
	}
	if id == c.dev.Device {
		return c.removeSelf()
	}
	if _, err := c.s.dir.Device(c.ctx, DeviceAddr{Account: c.dev.Account, Device: id}); err != nil {
		return err
	}
	return c.s.Revoke(c.ctx, DeviceAddr{Account: c.dev.Account, Device: id})
}

// ---- prekeys ----

func convertKey(k *wire.SignedPreKey, needSig bool) (*SignedPreKey, error) {
	if k == nil {
		return nil, nil
	}
	if len(k.PublicKey) == 0 || len(k.PublicKey) > maxPublicKey || len(k.Signature) > maxSignature ||
		(needSig && len(k.Signature) == 0) {
		return nil, badRequest("bad prekey")
	}
	return &SignedPreKey{ID: k.Id, PublicKey: k.PublicKey, Signature: k.Signature}, nil
}

func convertPreKeys(p *wire.PreKeys, required bool) (PreKeys, error) {
	var out PreKeys
	if p == nil {
		if required {
			return out, badRequest("prekeys required")
		}
		return out, nil
	}
	if len(p.OneTimePrekeys)+len(p.OneTimeKyberPrekeys) > maxPreKeysUpload {
		return out, badRequest("too many prekeys in one upload")
	}
	var err error
	if out.SignedPreKey, err = convertKey(p.SignedPrekey, true); err != nil {
		return out, err
	}
	if out.LastResortKyber, err = convertKey(p.LastResortKyber, true); err != nil {
		return out, err
	}
	if required && (out.SignedPreKey == nil || out.LastResortKyber == nil) {
		return out, badRequest("signed prekey and last-resort kyber prekey required")
	}
	for _, k := range p.OneTimePrekeys {
		ck, err := convertKey(&wire.SignedPreKey{Id: k.GetId(), PublicKey: k.GetPublicKey()}, false)
		if err != nil {
			return out, err
		}
		out.OneTime = append(out.OneTime, *ck)
	}
	for _, k := range p.OneTimeKyberPrekeys {
		ck, err := convertKey(k, true)
		if err != nil {
			return out, err
		}
		out.OneTimeKyber = append(out.OneTimeKyber, *ck)
	}
	return out, nil
}

func (c *conn) uploadPreKeys(r *wire.UploadPreKeysRequest) error {
	keys, err := convertPreKeys(r.Prekeys, false)
	if err != nil {
		return err
	}
	return c.s.dir.StorePreKeys(c.ctx, c.dev, keys)
}

func (c *conn) preKeyCount() (*wire.PreKeyCountResponse, error) {
	n, err := c.s.dir.CountPreKeys(c.ctx, c.dev)
	if err != nil {
		return nil, err
	}
	return &wire.PreKeyCountResponse{OneTimePrekeys: uint32(n.OneTime), OneTimeKyberPrekeys: uint32(n.OneTimeKyber),
		HasSignedPrekey: n.HasSignedPreKey, HasLastResortKyber: n.HasLastResort}, nil
}

func wireKey(k *SignedPreKey) *wire.SignedPreKey {
	if k == nil {
		return nil
	}
	return &wire.SignedPreKey{Id: k.ID, PublicKey: k.PublicKey, Signature: k.Signature}
}

// lookup finds an active account by (unnormalized) username, with its
// active devices (from the directory cache: do not modify them).
func (c *conn) lookup(username string) (Account, []Device, error) {
	u, err := NormalizeUsername(username)
	if err != nil {
		return Account{}, nil, ErrNotFound
	}
	acct, devs, err := c.s.cache.get(c.ctx, u)
	if err != nil {
		return acct, nil, err
	}
	if acct.Revoked {
		return acct, nil, ErrNotFound
	}
	return acct, devs, nil
}

func (c *conn) fetchPreKeys(r *wire.FetchPreKeysRequest) (*wire.FetchPreKeysResponse, error) {
	acct, devs, err := c.lookup(r.Username)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	if r.DeviceId != 0 {
		ids = []uint32{r.DeviceId}
	} else {
		for _, d := range devs {
			if d.Addr != c.dev {
				ids = append(ids, d.Addr.Device)
			}
		}
	}
	cert, err := c.s.identityCertificate(c.ctx, acct.Username)
	if err != nil {
		return nil, err
	}
	out := &wire.FetchPreKeysResponse{Username: acct.Username, IdentityKey: acct.IdentityKey, IdentityCertificate: cert}
	for _, id := range ids {
		b, err := c.s.dir.TakeBundle(c.ctx, DeviceAddr{Account: acct.ID, Device: id})
		if r.DeviceId == 0 && errors.Is(err, ErrPreKeys) {
			continue
		}
		if err != nil {
			return nil, err
		}
		pb := &wire.PreKeyBundle{DeviceId: id, RegistrationId: b.Device.RegistrationID,
			SignedPrekey: wireKey(b.SignedPreKey), KyberPrekey: wireKey(b.Kyber), KyberLastResort: b.KyberLastResort}
		if b.OneTime != nil {
			pb.OneTimePrekey = &wire.PreKey{Id: b.OneTime.ID, PublicKey: b.OneTime.PublicKey}
		}
		out.Bundles = append(out.Bundles, pb)
	}
	if len(out.Bundles) == 0 && len(ids) > 0 {
		return nil, ErrPreKeys
	}
	if out.Transparency, err = c.lookupProof(acct.Username, r.TransparencyKnownSize); err != nil {
		return nil, err
	}
	return out, nil
}

// ---- directory ----

func deviceList(username string, devs []Device, own bool) *wire.DeviceList {
	l := &wire.DeviceList{Username: username}
	for _, d := range devs {
		di := &wire.DeviceInfo{DeviceId: d.Addr.Device, RegistrationId: d.RegistrationID, CreatedMs: d.Created.UnixMilli()}
		if own {
			di.Name = d.Name
			di.LastSeenMs = d.LastSeen.UnixMilli()
		}
		l.Devices = append(l.Devices, di)
	}
	return l
}

func (c *conn) getDevices(username string) (*wire.DeviceList, error) {
	acct, devs, err := c.lookup(username)
	if err != nil {
		return nil, err
	}
	return deviceList(acct.Username, devs, false), nil
}

func (c *conn) getIdentity(r *wire.GetIdentityRequest) (*wire.IdentityResponse, error) {
	acct, _, err := c.lookup(r.GetUsername())
	if err != nil {
		return nil, err
	}
	proof, err := c.lookupProof(acct.Username, r.GetTransparencyKnownSize())
	if err != nil {
		return nil, err
	}
	cert, err := c.s.identityCertificate(c.ctx, acct.Username)
	if err != nil {
		return nil, err
	}
	return &wire.IdentityResponse{Username: acct.Username, AccountId: acct.ID[:], IdentityKey: acct.IdentityKey,
		IdentityCertificate: cert, Transparency: proof}, nil
}

// ---- messaging ----

// ackIDs checks the ids of an Ack.
func ackIDs(r *wire.AckRequest) ([]EnvelopeID, error) {
	if len(r.EnvelopeIds) > maxAckIDs {
		return nil, badRequest("too many ids in one ack")
	}
	ids := make([]EnvelopeID, 0, len(r.EnvelopeIds))
	for _, b := range r.EnvelopeIds {
		if len(b) != len(EnvelopeID{}) {
			return nil, badRequest("bad envelope id")
		}
		ids = append(ids, EnvelopeID(b))
	}
	return ids, nil
}

func (c *conn) ack(r *wire.AckRequest) error {
	ids, err := ackIDs(r)
	if err != nil {
		return err
	}
	if err := c.s.mb.Delete(c.ctx, c.dev, ids); err != nil {
		return err
	}
	c.s.metrics.acked.Add(uint64(len(ids)))
	c.acked(ids)
	return nil
}
