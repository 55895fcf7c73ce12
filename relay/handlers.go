package relay

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

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

func (c *conn) handle(req *wire.Request) *wire.Response {
	resp := &wire.Response{Id: req.Id}
	if ok, wait := c.bucket.take(c.s.cfg.DeviceRate, c.s.cfg.Now()); !ok {
		errorResponse(resp, &RateError{RetryAfter: wait})
		c.s.metrics.countError(resp.Code)
		return resp
	}
	var err error
	switch b := req.Body.(type) {
	case *wire.Request_Ping:
		resp.Body = &wire.Response_Ping{Ping: &wire.PingResponse{ServerTimeMs: c.s.cfg.Now().UnixMilli()}}
	case *wire.Request_Enroll:
		var r *wire.EnrollResponse
		if r, err = c.enroll(b.Enroll); err == nil {
			r.SealedTrustRoot = c.s.sealedTrustRoot()
			resp.Body = &wire.Response_Enroll{Enroll: r}
		}
	case *wire.Request_Authenticate:
		var r *wire.AuthenticateResponse
		if r, err = c.authenticate(b.Authenticate); err == nil {
			resp.Body = &wire.Response_Authenticate{Authenticate: r}
		}
	case *wire.Request_LinkDevice:
		var r *wire.EnrollResponse
		if r, err = c.linkDevice(b.LinkDevice); err == nil {
			r.SealedTrustRoot = c.s.sealedTrustRoot()
			resp.Body = &wire.Response_LinkDevice{LinkDevice: r}
		}
	case *wire.Request_SealedSend:
		var r *wire.SendMessageResponse
		if r, err = c.sealedSend(b.SealedSend); err == nil {
			resp.Body = &wire.Response_SealedSend{SealedSend: r}
		}
	case *wire.Request_Provision:
		var r *wire.ProvisionResponse
		if r, err = c.provision(); err == nil {
			resp.Body = &wire.Response_Provision{Provision: r}
		}
	default:
		if !c.authed {
			err = ErrUnauthenticated
			break
		}
		err = c.handleAuthed(req, resp)
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

func (c *conn) handleAuthed(req *wire.Request, resp *wire.Response) error {
	var err error
	switch b := req.Body.(type) {
	case *wire.Request_UploadPrekeys:
		err = c.uploadPreKeys(b.UploadPrekeys)
		resp.Body = &wire.Response_UploadPrekeys{UploadPrekeys: &wire.UploadPreKeysResponse{}}
	case *wire.Request_PrekeyCount:
		var r *wire.PreKeyCountResponse
		if r, err = c.preKeyCount(); err == nil {
			resp.Body = &wire.Response_PrekeyCount{PrekeyCount: r}
		}
	case *wire.Request_FetchPrekeys:
		var r *wire.FetchPreKeysResponse
		if r, err = c.fetchPreKeys(b.FetchPrekeys); err == nil {
			resp.Body = &wire.Response_FetchPrekeys{FetchPrekeys: r}
		}
	case *wire.Request_GetDevices:
		var r *wire.DeviceList
		if r, err = c.getDevices(b.GetDevices.GetUsername()); err == nil {
			resp.Body = &wire.Response_GetDevices{GetDevices: r}
		}
	case *wire.Request_GetIdentity:
		var r *wire.IdentityResponse
		if r, err = c.getIdentity(b.GetIdentity); err == nil {
			resp.Body = &wire.Response_GetIdentity{GetIdentity: r}
		}
	case *wire.Request_SendMessage:
		var r *wire.SendMessageResponse
		if r, err = c.sendMessage(b.SendMessage); err == nil {
			resp.Body = &wire.Response_SendMessage{SendMessage: r}
		}
	case *wire.Request_Ack:
		err = c.ack(b.Ack)
		resp.Body = &wire.Response_Ack{Ack: &wire.AckResponse{}}
	case *wire.Request_LinkToken:
		var r *wire.LinkTokenResponse
		if r, err = c.linkToken(); err == nil {
			resp.Body = &wire.Response_LinkToken{LinkToken: r}
		}
	case *wire.Request_SendProvisioning:
		err = c.sendProvisioning(b.SendProvisioning)
		resp.Body = &wire.Response_SendProvisioning{SendProvisioning: &wire.SendProvisioningResponse{}}
	case *wire.Request_ListDevices:
		var devs []Device
		if devs, err = c.s.dir.Devices(c.ctx, c.dev.Account, false); err == nil {
			resp.Body = &wire.Response_ListDevices{ListDevices: deviceList(c.username, devs, true)}
		}
	case *wire.Request_RemoveDevice:
		err = c.removeDevice(b.RemoveDevice.GetDeviceId())
		resp.Body = &wire.Response_RemoveDevice{RemoveDevice: &wire.RemoveDeviceResponse{}}
	case *wire.Request_TurnCredentials:
		var r *wire.TurnCredentials
		if r, err = c.turnCredentials(); err == nil {
			resp.Body = &wire.Response_TurnCredentials{TurnCredentials: r}
		}
	case *wire.Request_BlobToken:
		var r *wire.BlobTokenResponse
		if r, err = c.blobToken(); err == nil {
			resp.Body = &wire.Response_BlobToken{BlobToken: r}
		}
	default:
		var handled bool
		if handled, err = c.handleOrg(req, resp); !handled {
			if handled, err = c.handleTransparency(req, resp); !handled {
				if handled, err = c.handleSealed(req, resp); !handled {
					err = badRequest("unknown request")
				}
			}
		}
	}
	return err
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

func (c *conn) sendMessage(r *wire.SendMessageRequest) (*wire.SendMessageResponse, error) {
	send, err := c.prepareSend(r, c.lookup)
	if err != nil {
		return nil, err
	}
	res, err := c.s.mb.Append(c.ctx, send)
	if err != nil {
		return nil, err
	}
	c.stored(send, res)
	return &wire.SendMessageResponse{ServerTimestampMs: res.Timestamp.UnixMilli(), Duplicate: res.Duplicate}, nil
}

// prepareSend checks a SendMessage against the recipient's current
// devices (found with lookup) and builds the Send to store.
func (c *conn) prepareSend(r *wire.SendMessageRequest, lookup func(string) (Account, []Device, error)) (*Send, error) {
	now := c.s.cfg.Now()
	if !now.Before(c.acct.Expires) {
		return nil, ErrExpired
	}
	if len(r.MessageId) == 0 || len(r.MessageId) > maxMessageID {
		return nil, badRequest("message id must be 1 to %d bytes", maxMessageID)
	}
	if len(r.Messages) > maxRecipients {
		return nil, badRequest("too many recipient devices")
	}
	acct, devs, err := lookup(r.Recipient)
	if err != nil {
		return nil, err
	}
	want := make(map[uint32]uint32, len(devs)) // device -> registration id
	var current []Device
	for _, d := range devs {
		if d.Addr == c.dev {
			continue // never to oneself
		}
		want[d.Addr.Device] = d.RegistrationID
		current = append(current, d)
	}
	stale := &StaleError{Username: acct.Username, Current: current}
	seen := make(map[uint32]bool, len(r.Messages))
	for _, m := range r.Messages {
		if seen[m.DeviceId] {
			return nil, badRequest("duplicate device id %d", m.DeviceId)
		}
		seen[m.DeviceId] = true
		reg, ok := want[m.DeviceId]
		switch {
		case !ok:
			stale.Extra = append(stale.Extra, m.DeviceId)
		case reg != m.RegistrationId:
			stale.Mismatched = append(stale.Mismatched, m.DeviceId)
		}
	}
	for id := range want {
		if !seen[id] {
			stale.Missing = append(stale.Missing, id)
		}
	}
	if len(stale.Missing)+len(stale.Extra)+len(stale.Mismatched) > 0 {
		slices.Sort(stale.Missing)
		slices.Sort(stale.Extra)
		slices.Sort(stale.Mismatched)
		return nil, stale
	}
	if len(r.Messages) == 0 {
		return nil, badRequest("no recipient devices")
	}
	send := &Send{Sender: c.dev, MessageID: r.MessageId, Timestamp: now, Envelopes: make([]Envelope, len(r.Messages))}
	for i, m := range r.Messages {
		e := &send.Envelopes[i]
		rand.Read(e.ID[8:])
		e.Recipient = DeviceAddr{Account: acct.ID, Device: m.DeviceId}
		e.Sender, e.SenderDevice = c.username, c.dev.Device
		e.Timestamp, e.Type, e.Content, e.MessageID = now, m.Type, m.Content, r.MessageId
	}
	return send, nil
}

// stored counts a stored send and wakes its recipients.
func (c *conn) stored(send *Send, res AppendResult) {
	c.s.metrics.sends.Add(1)
	if !res.Duplicate {
		c.s.metrics.stored.Add(uint64(len(send.Envelopes)))
		for i := range send.Envelopes {
			e := send.Envelopes[i : i+1]
			if err := c.s.bus.Notify(c.s.ctx, e[0].Recipient, e); err != nil {
				c.s.log.Warn("notifying recipient", "device", e[0].Recipient.String(), "err", err)
			}
		}
	}
}

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
