package session

import (
	"context"
	"errors"
	"io"
	"time"
)

// ProcessPreKeyBundle verifies a remote device's bundle and starts a session
// with it as initiator (PQXDH). The next Encrypt yields a PreKeySignalMessage.
func ProcessPreKeyBundle(ctx context.Context, rand io.Reader, s Stores, remote Address, b *PreKeyBundle, now time.Time) error {
	return errors.ErrUnsupported
}

// Encrypt encrypts plaintext for remote and returns the message type
// (MessageTypeSignal or MessageTypePreKey) and the serialized message.
func Encrypt(ctx context.Context, s Stores, remote Address, plaintext []byte, now time.Time) (msgType int, ciphertext []byte, err error) {
	return 0, nil, errors.ErrUnsupported
}

// Decrypt decrypts a message of the given type from remote. A failed
// decryption leaves every store unchanged.
func Decrypt(ctx context.Context, rand io.Reader, s Stores, remote Address, msgType int, ciphertext []byte) ([]byte, error) {
	return nil, errors.ErrUnsupported
}

// HasSession reports whether remote has a session with a usable current state.
func HasSession(ctx context.Context, s Stores, remote Address) (bool, error) {
	r, err := s.Sessions.LoadSession(ctx, remote)
	if err != nil {
		return false, err
	}
	return r.HasCurrentState(), nil
}
