package client

import (
	"encoding/base64"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A link code may carry the new device's name as a third part
// (sotto-link:ADDRESS.KEY.NAME, each in unpadded base64url), so that the
// approving device shows which device asks before it approves. The name
// is as trustworthy as the code: whoever holds the code could write any
// name, and is approved as the device the person chose to approve.

// maxLinkName bounds the name a link code carries.
const maxLinkName = 64

// NamedCode is Code with the device's name (empty: Code).
func (l *Linking) NamedCode(name string) string {
	code := l.Code()
	if name == "" {
		return code
	}
	return code + "." + base64.RawURLEncoding.EncodeToString([]byte(name))
}

// stripLinkName returns code without its name part.
func stripLinkName(code string) string {
	code = strings.TrimSpace(code)
	if i := strings.Index(code, "."); i >= 0 {
		if j := strings.Index(code[i+1:], "."); j >= 0 {
			return code[:i+1+j]
		}
	}
	return code
}

// LinkCodeName checks a link code and returns the device name it carries
// ("" when it carries none). ErrBadLinkCode: malformed, or a name that is
// too long, not UTF-8, or holds control characters.
func LinkCodeName(code string) (string, error) {
	code = strings.TrimSpace(code)
	if _, _, err := parseLinkCode(code); err != nil {
		return "", err
	}
	base := stripLinkName(code)
	if len(base) == len(code) {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(code[len(base)+1:])
	if err != nil || len(b) == 0 || len(b) > maxLinkName || !utf8.Valid(b) {
		return "", ErrBadLinkCode
	}
	name := string(b)
	if strings.IndexFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }) >= 0 {
		return "", ErrBadLinkCode
	}
	return name, nil
}
