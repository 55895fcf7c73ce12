package relay

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"strings"
)

// NormalizeUsername lowercases a username and checks it is 3 to 32
// characters of [a-z0-9._-].
func NormalizeUsername(s string) (string, error) {
	u := strings.ToLower(s)
	if len(u) < 3 || len(u) > 32 {
		return "", withReason(ErrBadRequest, "username must be 3 to 32 characters")
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return "", withReason(ErrBadRequest, "username may contain only a-z 0-9 . _ -")
		}
	}
	return u, nil
}

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newSeatID returns a fresh public id for a seat (40 random bits in
// lowercase base32), by which admins list and revoke it.
func newSeatID() string {
	idRaw := make([]byte, 5)
	rand.Read(idRaw)
	return strings.ToLower(codeEncoding.EncodeToString(idRaw))
}

// randomToken returns n random bytes in unpadded base64url.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(t string) [32]byte {
	return sha256.Sum256([]byte("sotto/link-token/v1\x00" + t))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
