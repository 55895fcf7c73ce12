package mls

import (
	"bytes"
	"fmt"
)

// KeyPackageInfo is what a verified KeyPackage says about its client.
type KeyPackageInfo struct {
	CipherSuite  CipherSuite
	Credential   Credential
	SignatureKey []byte
}

// InspectKeyPackage parses an MLSMessage-encoded KeyPackage, checks it is
// well formed for its cipher suite and signed by its leaf's signature key,
// and returns its credential: an application can vet a KeyPackage (and
// tell its user which one it refused) before adding it.
func InspectKeyPackage(keyPackageMsg []byte) (*KeyPackageInfo, error) {
	var m mlsMessage
	if err := unmarshal(keyPackageMsg, &m); err != nil {
		return nil, err
	}
	if m.keyPackage == nil {
		return nil, fmt.Errorf("%w: not a key package", ErrInvalidMessage)
	}
	kp := m.keyPackage
	s, err := CipherSuite(kp.cipherSuite).suite()
	if err != nil {
		return nil, err
	}
	if err := validateKeyPackage(s, kp); err != nil {
		return nil, err
	}
	return &KeyPackageInfo{CipherSuite: s.id, Credential: publicCredential(&kp.leafNode.credential),
		SignatureKey: bytes.Clone(kp.leafNode.signatureKey)}, nil
}
