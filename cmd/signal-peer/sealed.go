package main

import (
	"context"
	"time"

	"sotto/signal/keys"
	"sotto/signal/sealed"
	"sotto/signal/session"
)

// sealedArgs are the arguments of the sealed-sender extension's operations.
type sealedArgs struct {
	TrustRootPrivate  []byte `json:"trust_root_private"`
	ServerKeyPrivate  []byte `json:"server_key_private"`
	KeyID             *int64 `json:"key_id"`
	Expires           *int64 `json:"expires"`
	Sender            string `json:"sender"`
	E164              string `json:"e164"`
	IdentityKey       []byte `json:"identity_key"`
	SenderCertificate []byte `json:"sender_certificate"`
	ContentHint       *int64 `json:"content_hint"`
	GroupID           []byte `json:"group_id"`
	TrustRoot         []byte `json:"trust_root"`
	Timestamp         *int64 `json:"timestamp"`
	ProfileKey        []byte `json:"profile_key"`
}

func (p *peer) addSealedOps() {
	p.ops["sender_certificate"] = p.senderCertificate
	p.ops["sealed_encrypt"] = p.sealedEncrypt
	p.ops["sealed_decrypt"] = p.sealedDecrypt
	p.ops["sealed_unseal"] = p.sealedUnseal
	p.ops["access_key"] = p.accessKey
}

const maxMillis = 1<<53 - 1

// senderCertificate makes a trust root -> server certificate -> sender
// certificate chain for the local party (or for identity_key when given).
func (p *peer) senderCertificate(_ context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	root, err := keys.ParsePrivateKey(req.TrustRootPrivate)
	if err != nil {
		return nil, badArg("trust_root_private: %v", err)
	}
	var server keys.KeyPair
	if req.ServerKeyPrivate != nil {
		priv, err := keys.ParsePrivateKey(req.ServerKeyPrivate)
		if err != nil {
			return nil, badArg("server_key_private: %v", err)
		}
		server = keys.NewKeyPair(priv)
	} else if server, err = keys.GenerateKeyPair(p.rand); err != nil {
		return nil, err
	}
	keyID, err := intArg("key_id", req.KeyID, 1, 0, 0xffffffff)
	if err != nil {
		return nil, err
	}
	if req.Expires == nil {
		return nil, badArg("expires: missing")
	}
	expires, err := intArg("expires", req.Expires, 0, 0, maxMillis)
	if err != nil {
		return nil, err
	}
	sender := req.Sender
	if sender == "" {
		sender = pa.addr.Name
	}
	identity := pa.identity.PublicKey()
	if req.IdentityKey != nil {
		if identity, err = keys.ParsePublicKey(req.IdentityKey); err != nil {
			return nil, badArg("identity_key: %v", err)
		}
	}
	sc, err := sealed.NewServerCertificate(p.rand, uint32(keyID), server.Public, root)
	if err != nil {
		return nil, err
	}
	cert, err := sealed.NewSenderCertificate(p.rand, sender, req.E164, identity, pa.addr.DeviceID, time.UnixMilli(expires), sc, server.Private)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"sender_certificate": cert.Serialize(),
		"server_certificate": sc.Serialize(),
		"trust_root":         root.PublicKey().Serialize(),
	}, nil
}

// sealedEncrypt seals like libsignal's sealed_sender_encrypt: it does not
// check that the certificate names the sender's own identity key, so that a
// test can make a message whose certificate and static key differ.
func (p *peer) sealedEncrypt(ctx context.Context, req *request) (map[string]any, error) {
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
	cert, err := sealed.ParseSenderCertificate(req.SenderCertificate)
	if err != nil {
		return nil, badArg("sender_certificate: %v", err)
	}
	hint, err := intArg("content_hint", req.ContentHint, 0, 0, 0xffffffff)
	if err != nil {
		return nil, err
	}
	s := pa.stores()
	their, err := s.Identity.Identity(ctx, addr)
	if err != nil {
		return nil, err
	}
	if their == nil {
		return nil, &kindError{kind: "no_session", err: session.ErrNoSession}
	}
	theirKey, err := keys.ParsePublicKey(their)
	if err != nil {
		return nil, err
	}
	typ, inner, err := session.Encrypt(ctx, s, addr, req.Plaintext, p.now())
	if err != nil {
		return nil, err
	}
	c, err := sealed.NewContent(typ, cert, inner, sealed.ContentHint(hint), req.GroupID)
	if err != nil {
		return nil, err
	}
	ct, err := sealed.Seal(p.rand, pa.identity, theirKey, c)
	if err != nil {
		return nil, err
	}
	return map[string]any{"ciphertext": ct}, nil
}

// sealedDecrypt is sealed.Decrypt: libsignal's checks plus Sotto's check of
// the certificate's identity key against the one held for the sender.
func (p *peer) sealedDecrypt(ctx context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	if req.Ciphertext == nil {
		return nil, badArg("ciphertext: missing")
	}
	root, err := keys.ParsePublicKey(req.TrustRoot)
	if err != nil {
		return nil, badArg("trust_root: %v", err)
	}
	if req.Timestamp == nil {
		return nil, badArg("timestamp: missing")
	}
	ts, err := intArg("timestamp", req.Timestamp, 0, 0, maxMillis)
	if err != nil {
		return nil, err
	}
	r, err := sealed.Decrypt(ctx, p.rand, pa.stores(), req.Ciphertext, root, time.UnixMilli(ts), pa.addr)
	if err != nil {
		return nil, err
	}
	pt := r.Plaintext
	if pt == nil {
		pt = []byte{}
	}
	return map[string]any{"sender": r.Sender.Name, "sender_device_id": r.Sender.DeviceID, "plaintext": pt}, nil
}

func (p *peer) sealedUnseal(_ context.Context, req *request) (map[string]any, error) {
	pa, err := p.local(req)
	if err != nil {
		return nil, err
	}
	c, err := sealed.Unseal(pa.identity, req.Ciphertext)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"type":               c.Type,
		"sender_certificate": c.Sender.Serialize(),
		"contents":           c.Contents,
		"content_hint":       uint32(c.Hint),
	}
	if c.GroupID != nil {
		out["group_id"] = c.GroupID
	}
	return out, nil
}

func (p *peer) accessKey(_ context.Context, req *request) (map[string]any, error) {
	k, err := sealed.DeriveAccessKey(req.ProfileKey)
	if err != nil {
		return nil, badArg("profile_key: %v", err)
	}
	return map[string]any{"access_key": k}, nil
}
