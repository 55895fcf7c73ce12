package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sotto/signal/keys"
	"sotto/signal/sealed"
)

// Sealed sender: the trust root and the server key live in the data
// directory (hex, mode 0600), made on first start. The server certificate
// (key id 1) is signed afresh at each start. These keys certify senders for
// libsignal's format only: in Sotto's model a relay is untrusted and can mint
// any certificate; recipients check the certificate's identity key against
// the one they hold for the sender.
const (
	sealedRootFile   = "sealed-trust-root.key"
	sealedServerFile = "sealed-server.key"
	sealedServerID   = 1
)

// sealedIssuer implements relay.CertificateIssuer with signal/sealed.
type sealedIssuer struct {
	root      []byte // serialized public trust root
	server    *sealed.ServerCertificate
	serverKey keys.PrivateKey
}

func loadSealedIssuer(dataDir string) (*sealedIssuer, error) {
	root, err := loadCurveKey(filepath.Join(dataDir, sealedRootFile))
	if err != nil {
		return nil, err
	}
	server, err := loadCurveKey(filepath.Join(dataDir, sealedServerFile))
	if err != nil {
		return nil, err
	}
	sc, err := sealed.NewServerCertificate(rand.Reader, sealedServerID, server.PublicKey(), root)
	if err != nil {
		return nil, fmt.Errorf("sottod: server certificate: %w", err)
	}
	return &sealedIssuer{root: root.PublicKey().Serialize(), server: sc, serverKey: server}, nil
}

// TrustRoot implements relay.CertificateIssuer.
func (s *sealedIssuer) TrustRoot() []byte { return append([]byte(nil), s.root...) }

// SenderCertificate implements relay.CertificateIssuer.
func (s *sealedIssuer) SenderCertificate(sender string, device uint32, identityKey []byte, expires time.Time) ([]byte, error) {
	id, err := keys.ParsePublicKey(identityKey)
	if err != nil {
		return nil, err
	}
	c, err := sealed.NewSenderCertificate(rand.Reader, sender, "", id, device, expires, s.server, s.serverKey)
	if err != nil {
		return nil, err
	}
	return c.Serialize(), nil
}

// loadCurveKey reads a hex Curve25519 private key, creating it if absent.
func loadCurveKey(path string) (keys.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		kp, gerr := keys.GenerateKeyPair(rand.Reader)
		if gerr != nil {
			return keys.PrivateKey{}, fmt.Errorf("sottod: %s: %w", filepath.Base(path), gerr)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return keys.PrivateKey{}, fmt.Errorf("sottod: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // another process made it meanwhile
			return loadCurveKey(path)
		}
		if err != nil {
			return keys.PrivateKey{}, fmt.Errorf("sottod: %w", err)
		}
		_, werr := f.WriteString(hex.EncodeToString(kp.Private.Bytes()) + "\n")
		if serr := f.Sync(); werr == nil {
			werr = serr
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return keys.PrivateKey{}, fmt.Errorf("sottod: writing %s: %w", filepath.Base(path), werr)
		}
		return kp.Private, nil
	}
	if err != nil {
		return keys.PrivateKey{}, fmt.Errorf("sottod: %w", err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != keys.PrivateKeySize {
		return keys.PrivateKey{}, fmt.Errorf("sottod: %s: not a hex Curve25519 private key", path)
	}
	defer clear(raw)
	return keys.ParsePrivateKey(raw)
}
