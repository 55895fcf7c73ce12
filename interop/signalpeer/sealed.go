package signalpeer

import (
	"context"
	"time"
)

// CertificateRequest asks a peer for a trust root -> server certificate -> sender
// certificate chain (the sealed-sender extension's `sender_certificate`).
type CertificateRequest struct {
	TrustRootPrivate []byte    // 32 bytes
	ServerKeyPrivate []byte    // optional, 32 bytes; a fresh key when nil
	KeyID            uint32    // server key id (default 1 when 0)
	Expires          time.Time // sender certificate expiry (millisecond precision)
	Sender           string    // default: the local party's name
	E164             string    // optional
	IdentityKey      []byte    // optional serialized key; default the local party's
}

// Certificates is a sender certificate with its server certificate and trust root.
type Certificates struct {
	SenderCertificate []byte `json:"sender_certificate"`
	ServerCertificate []byte `json:"server_certificate"`
	TrustRoot         []byte `json:"trust_root"`
}

// SenderCertificate has the local party l's peer make and sign a certificate for l.
func (p *Peer) SenderCertificate(ctx context.Context, l Address, r CertificateRequest) (*Certificates, error) {
	args := local(l)
	args["trust_root_private"] = r.TrustRootPrivate
	if r.ServerKeyPrivate != nil {
		args["server_key_private"] = r.ServerKeyPrivate
	}
	if r.KeyID != 0 {
		args["key_id"] = r.KeyID
	}
	args["expires"] = r.Expires.UnixMilli()
	if r.Sender != "" {
		args["sender"] = r.Sender
	}
	if r.E164 != "" {
		args["e164"] = r.E164
	}
	if r.IdentityKey != nil {
		args["identity_key"] = r.IdentityKey
	}
	var c Certificates
	if err := p.Call(ctx, "sender_certificate", args, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// SealOptions are the optional fields of the sealed content.
type SealOptions struct {
	ContentHint uint32
	GroupID     []byte
}

// SealedEncrypt encrypts plaintext from l to r with the session, then seals it with
// the sender certificate (sealed sender v1).
func (p *Peer) SealedEncrypt(ctx context.Context, l, r Address, cert, plaintext []byte, o SealOptions) ([]byte, error) {
	args := pair(l, r)
	args["sender_certificate"] = cert
	args["plaintext"] = plaintext
	if o.ContentHint != 0 {
		args["content_hint"] = o.ContentHint
	}
	if o.GroupID != nil {
		args["group_id"] = o.GroupID
	}
	var out struct {
		Ciphertext []byte `json:"ciphertext"`
	}
	err := p.Call(ctx, "sealed_encrypt", args, &out)
	return out.Ciphertext, err
}

// Unsealed is a decrypted sealed message.
type Unsealed struct {
	Sender         string `json:"sender"`
	SenderDeviceID uint32 `json:"sender_device_id"`
	Plaintext      []byte `json:"plaintext"`
}

// SealedDecrypt unseals ct for l, validates the certificate against trustRoot at now
// and decrypts the inner message with the sender's session.
func (p *Peer) SealedDecrypt(ctx context.Context, l Address, ct, trustRoot []byte, now time.Time) (*Unsealed, error) {
	args := local(l)
	args["ciphertext"] = ct
	args["trust_root"] = trustRoot
	args["timestamp"] = now.UnixMilli()
	var u Unsealed
	if err := p.Call(ctx, "sealed_decrypt", args, &u); err != nil {
		return nil, err
	}
	if u.Plaintext == nil {
		u.Plaintext = []byte{}
	}
	return &u, nil
}

// SealedContent is an UnidentifiedSenderMessageContent as `sealed_unseal` returns it.
type SealedContent struct {
	Type              int    `json:"type"`
	SenderCertificate []byte `json:"sender_certificate"`
	Contents          []byte `json:"contents"`
	ContentHint       uint32 `json:"content_hint"`
	GroupID           []byte `json:"group_id"`
}

// SealedUnseal opens only the sealed layers of ct for l (no certificate validation,
// no session decryption).
func (p *Peer) SealedUnseal(ctx context.Context, l Address, ct []byte) (*SealedContent, error) {
	args := local(l)
	args["ciphertext"] = ct
	var c SealedContent
	if err := p.Call(ctx, "sealed_unseal", args, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// AccessKey derives the unidentified access key of a 32-byte profile key.
func (p *Peer) AccessKey(ctx context.Context, profileKey []byte) ([]byte, error) {
	var out struct {
		AccessKey []byte `json:"access_key"`
	}
	err := p.Call(ctx, "access_key", map[string]any{"profile_key": profileKey}, &out)
	return out.AccessKey, err
}
