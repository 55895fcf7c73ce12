package relay

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"strings"
)

// NormalizeUsername lowercases a username and checks it is 3 to 32
// characters of [a-z0-9._-].
func NormalizeUsername(s string) (string, error) {
	u := strings.ToLower(s)
	if len(u) < 3 || len(u) > 32 {
		return "", fmt.Errorf("%w: username must be 3 to 32 characters", ErrBadRequest)
	}
	for i := 0; i < len(u); i++ {
		c := u[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return "", fmt.Errorf("%w: username may contain only a-z 0-9 . _ -", ErrBadRequest)
		}
	}
	return u, nil
}

var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewActivationCode returns a fresh activation code (160 random bits, shown
// to the admin once, in groups of four characters) and its public id.
func NewActivationCode() (code, id string) {
	raw := make([]byte, 20)
	rand.Read(raw)
	s := codeEncoding.EncodeToString(raw)
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i : i+4])
	}
	idRaw := make([]byte, 5)
	rand.Read(idRaw)
	return b.String(), strings.ToLower(codeEncoding.EncodeToString(idRaw))
}

// HashActivationCode returns the stored form of a code: SHA-256 of the
// code with dashes and spaces removed, uppercased.
func HashActivationCode(code string) [32]byte {
	c := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(code))
	return sha256.Sum256([]byte("sotto/activation-code/v1\x00" + c))
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
