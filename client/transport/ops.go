package transport

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"sotto/wire"
)

var errUnexpected = errors.New("transport: unexpected response body")

// Enroll creates an account and its first device with an activation code.
// It signs req with key (filling DeviceKey when empty). On success the
// connection is authenticated as the new device.
func (c *Conn) Enroll(ctx context.Context, req *wire.EnrollRequest, key ed25519.PrivateKey) (*wire.EnrollResponse, error) {
	if len(req.DeviceKey) == 0 {
		req.DeviceKey = key.Public().(ed25519.PublicKey)
	}
	req.Signature = ed25519.Sign(key, wire.EnrollTranscript(c.currentNonce(), req.Username, req.DeviceKey, req.IdentityKey, req.RegistrationId))
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_Enroll{Enroll: req}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetEnroll())
}

// Authenticate answers the relay's current challenge as (username, deviceID).
func (c *Conn) Authenticate(ctx context.Context, username string, deviceID uint32, key ed25519.PrivateKey) (*wire.AuthenticateResponse, error) {
	sig := ed25519.Sign(key, wire.AuthTranscript(c.currentNonce(), username, deviceID))
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_Authenticate{Authenticate: &wire.AuthenticateRequest{
		Username: username, DeviceId: deviceID, Signature: sig,
	}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetAuthenticate())
}

// LinkDevice registers this (new) device on the account that minted
// req.LinkToken, signing with key. On success the connection is
// authenticated as the new device.
func (c *Conn) LinkDevice(ctx context.Context, req *wire.LinkDeviceRequest, key ed25519.PrivateKey) (*wire.EnrollResponse, error) {
	if len(req.DeviceKey) == 0 {
		req.DeviceKey = key.Public().(ed25519.PublicKey)
	}
	req.Signature = ed25519.Sign(key, wire.LinkTranscript(c.currentNonce(), req.LinkToken, req.DeviceKey, req.IdentityKey, req.RegistrationId))
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_LinkDevice{LinkDevice: req}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetLinkDevice())
}

// UploadPreKeys stores prekeys for the authenticated device.
func (c *Conn) UploadPreKeys(ctx context.Context, keys *wire.PreKeys) error {
	_, err := c.Do(ctx, &wire.Request{Body: &wire.Request_UploadPrekeys{UploadPrekeys: &wire.UploadPreKeysRequest{Prekeys: keys}}})
	return err
}

// PreKeyCount reports how many one-time prekeys the relay still holds for
// the authenticated device.
func (c *Conn) PreKeyCount(ctx context.Context) (*wire.PreKeyCountResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_PrekeyCount{PrekeyCount: &wire.PreKeyCountRequest{}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetPrekeyCount())
}

// FetchPreKeys returns prekey bundles for one device of username, or for
// all of them when deviceID is 0. Each one-time prekey is handed out once.
func (c *Conn) FetchPreKeys(ctx context.Context, username string, deviceID uint32) (*wire.FetchPreKeysResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_FetchPrekeys{FetchPrekeys: &wire.FetchPreKeysRequest{Username: username, DeviceId: deviceID}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetFetchPrekeys())
}

// GetDevices returns the device ids and registration ids of username.
func (c *Conn) GetDevices(ctx context.Context, username string) (*wire.DeviceList, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GetDevices{GetDevices: &wire.GetDevicesRequest{Username: username}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetGetDevices())
}

// GetIdentity returns the account id and identity key of username.
func (c *Conn) GetIdentity(ctx context.Context, username string) (*wire.IdentityResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GetIdentity{GetIdentity: &wire.GetIdentityRequest{Username: username}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetGetIdentity())
}

// SendMessage stores one ciphertext per recipient device. It returns once
// the relay has durably stored them. A stale device list fails with a
// *Error of code STALE_DEVICES whose Stale field lists the differences.
func (c *Conn) SendMessage(ctx context.Context, req *wire.SendMessageRequest) (*wire.SendMessageResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_SendMessage{SendMessage: req}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetSendMessage())
}

// Ack tells the relay that envelopes were processed; it deletes them.
func (c *Conn) Ack(ctx context.Context, envelopeIDs ...[]byte) error {
	_, err := c.Do(ctx, &wire.Request{Body: &wire.Request_Ack{Ack: &wire.AckRequest{EnvelopeIds: envelopeIDs}}})
	return err
}

// Provision opens a provisioning channel on this (unauthenticated)
// connection and returns its address. Messages sent to it arrive on
// ProvisioningMessages.
func (c *Conn) Provision(ctx context.Context) (string, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_Provision{Provision: &wire.ProvisionRequest{}}})
	if err != nil {
		return "", err
	}
	p, err := body(resp.GetProvision())
	if err != nil {
		return "", err
	}
	return p.Address, nil
}

// LinkToken mints a one-time token for linking a new device to this account.
func (c *Conn) LinkToken(ctx context.Context) (*wire.LinkTokenResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_LinkToken{LinkToken: &wire.LinkTokenRequest{}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetLinkToken())
}

// SendProvisioning delivers an opaque provisioning message to address.
func (c *Conn) SendProvisioning(ctx context.Context, address string, msg []byte) error {
	_, err := c.Do(ctx, &wire.Request{Body: &wire.Request_SendProvisioning{SendProvisioning: &wire.SendProvisioningRequest{Address: address, Body: msg}}})
	return err
}

// ListDevices lists the devices of the authenticated account, with names.
func (c *Conn) ListDevices(ctx context.Context) (*wire.DeviceList, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_ListDevices{ListDevices: &wire.ListDevicesRequest{}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetListDevices())
}

// RemoveDevice unlinks another device of the authenticated account.
func (c *Conn) RemoveDevice(ctx context.Context, deviceID uint32) error {
	_, err := c.Do(ctx, &wire.Request{Body: &wire.Request_RemoveDevice{RemoveDevice: &wire.RemoveDeviceRequest{DeviceId: deviceID}}})
	return err
}

// Ping round-trips to the relay and returns its clock in Unix milliseconds.
func (c *Conn) Ping(ctx context.Context) (int64, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_Ping{Ping: &wire.PingRequest{}}})
	if err != nil {
		return 0, err
	}
	p, err := body(resp.GetPing())
	if err != nil {
		return 0, err
	}
	return p.ServerTimeMs, nil
}

// body rejects an OK response that lacks the expected body.
func body[T comparable](v T) (T, error) {
	var zero T
	if v == zero {
		return zero, fmt.Errorf("%w", errUnexpected)
	}
	return v, nil
}
