package transport

import (
	"context"

	"sotto/wire"
)

// SetAccessKey stores the authenticated account's unidentified access key.
func (c *Conn) SetAccessKey(ctx context.Context, key []byte) error {
	return c.SetAccessKeyRefusing(ctx, key, false)
}

// SetAccessKeyRefusing is SetAccessKey that also says whether sealed sends
// to the account may present the organization's member access key
// (refuseMember: they may not).
func (c *Conn) SetAccessKeyRefusing(ctx context.Context, key []byte, refuseMember bool) error {
	return c.SetAccessKeyEpoch(ctx, key, refuseMember, 0)
}

// SetAccessKeyEpoch is SetAccessKeyRefusing for the access key of a
// profile key of the given epoch: the relay refuses (CONFLICT) a lower
// epoch than the one it holds.
func (c *Conn) SetAccessKeyEpoch(ctx context.Context, key []byte, refuseMember bool, epoch uint64) error {
	_, err := c.Do(ctx, &wire.Request{Body: &wire.Request_SetAccessKey{SetAccessKey: &wire.SetAccessKeyRequest{AccessKey: key, RefuseMemberAccess: refuseMember, Epoch: epoch}}})
	return err
}

// SenderCertificate asks the relay for a sealed-sender certificate for the
// authenticated device.
func (c *Conn) SenderCertificate(ctx context.Context) (*wire.SenderCertificateResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_SenderCertificate{SenderCertificate: &wire.SenderCertificateRequest{}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetSenderCertificate())
}

// SealedSend sends sealed messages without a sender. It must be called on a
// connection that never authenticated.
func (c *Conn) SealedSend(ctx context.Context, req *wire.SealedSendRequest) (*wire.SendMessageResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_SealedSend{SealedSend: req}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetSealedSend())
}
