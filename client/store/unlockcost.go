package store

import "context"

// OpenCounting is Open that also returns how many Argon2id derivations
// the attempt made, whatever its outcome: what decides its time. Audits
// (the red-team suite) use it to check, without timing anything, that the
// duress, a wrong and the right passphrase cost the same.
func OpenCounting(ctx context.Context, dir string, passphrase []byte) (*Store, int, error) {
	n := 0
	s, err := openWith(ctx, dir, passphrase, func(passphrase, salt []byte, p KDFParams) []byte {
		n++
		return argon2KDF(passphrase, salt, p)
	})
	return s, n, err
}
