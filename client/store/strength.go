package store

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The passphrase policy: a new passphrase must reach a minimum estimate of
// guessing entropy. The estimator is deliberately simple and transparent,
// so that what it asks for can be explained in one error message:
//
//   - Each character is worth log2 of the size of the alphabet the
//     passphrase draws from: 26 for lower-case letters, 26 more for
//     upper-case, 10 for digits, 33 for ASCII punctuation and space, and
//     100 for anything else, added up for the classes present.
//   - A character equal to the previous one, or next to it in code order
//     ("aaa", "abc", "321"), is worth 1 bit.
//   - A character that ends a three-character run seen earlier in the
//     passphrase ("abcabc", "passpass") is worth 1 bit.
//   - A stretch that spells one of about 150 of the most common passwords,
//     words and keyboard walks (commonWords), after lower-casing and undoing
//     the usual letter-for-digit swaps ("p4ssw0rd"), is worth log2 of the
//     list's size (about 7 bits) in all, however long it is.
//
// It over-estimates passphrases made of ordinary words ("correct horse
// battery staple" scores about 160 bits, where four words drawn from a
// 7,776-word list are worth 52), since it cannot know which words a person
// is likely to pick; it catches the passphrases attackers try first: short
// ones, repetitions, sequences and the common-password lists. It is a floor
// against the worst choices, not a measure of strength.

// DefaultMinPassphraseBits is the minimum estimate a new passphrase needs
// unless Options say otherwise: 50 bits, about what 11 random lower-case
// letters, 9 random mixed characters or four random dictionary words give.
// With the default Argon2id cost (a quarter of a second per guess on one
// core), 2^50 guesses are far beyond anyone who copies the disk.
const DefaultMinPassphraseBits = 50

// ErrWeakPassphrase reports a new passphrase below the policy's minimum;
// the error is a *WeakPassphraseError.
var ErrWeakPassphrase = errors.New("store: passphrase too weak")

// WeakPassphraseError says how a new passphrase fell short.
type WeakPassphraseError struct {
	Bits, Min float64 // the estimate and the required minimum
}

func (e *WeakPassphraseError) Error() string {
	return fmt.Sprintf("store: passphrase too weak: estimated %.0f bits of guessing entropy, at least %.0f required "+
		"(use four or more random words, or a dozen characters mixing cases, digits and symbols; "+
		"avoid common passwords, repetitions and sequences)", e.Bits, e.Min)
}

// Unwrap makes errors.Is(err, ErrWeakPassphrase) hold.
func (e *WeakPassphraseError) Unwrap() error { return ErrWeakPassphrase }

// CheckPassphrase reports a *WeakPassphraseError when passphrase's
// estimated guessing entropy (PassphraseBits) is below minBits. A
// minBits of zero or less accepts any non-empty passphrase.
func CheckPassphrase(passphrase []byte, minBits float64) error {
	if len(passphrase) == 0 {
		return errors.New("store: empty passphrase")
	}
	if minBits <= 0 {
		return nil
	}
	if b := PassphraseBits(passphrase); b < minBits {
		return &WeakPassphraseError{Bits: b, Min: minBits}
	}
	return nil
}

// PassphraseBits estimates the guessing entropy of passphrase in bits, as
// described at the top of this file.
func PassphraseBits(passphrase []byte) float64 {
	rs := []rune(string(passphrase)) // invalid UTF-8 counts as U+FFFD, "other"
	if len(rs) == 0 {
		return 0
	}
	if len(rs) > maxAnalysed {
		// Beyond this the estimate is far above any minimum; the checks
		// are quadratic, and a pasted book must not stall an unlock.
		rs = rs[:maxAnalysed]
	}
	var lower, upper, digit, punct, other bool
	for _, r := range rs {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case r < utf8.RuneSelf:
			punct = true
		default:
			other = true
		}
	}
	pool := 0
	for _, c := range []struct {
		present bool
		n       int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {punct, 33}, {other, 100}} {
		if c.present {
			pool += c.n
		}
	}
	perChar := math.Log2(float64(pool))

	cost := make([]float64, len(rs))
	for i, r := range rs {
		cost[i] = perChar
		if i > 0 {
			if d := r - rs[i-1]; d >= -1 && d <= 1 {
				cost[i] = 1
			}
		}
		if i >= 3 && strings.Contains(string(rs[:i-1]), string(rs[i-2:i+1])) {
			cost[i] = 1
		}
	}

	// Common words: each match costs dictBits in all instead of its
	// characters' worth.
	norm := normalize(rs)
	dictBits := math.Log2(float64(len(commonWords)))
	for i := 0; i < len(norm); {
		n := longestCommonAt(norm, i)
		if n == 0 {
			i++
			continue
		}
		for j := i; j < i+n; j++ {
			cost[j] = 0
		}
		cost[i] = dictBits
		i += n
	}

	var bits float64
	for _, c := range cost {
		bits += c
	}
	return bits
}

// maxAnalysed bounds the runes PassphraseBits looks at.
const maxAnalysed = 256

// normalize lower-cases rs and undoes the usual letter-for-digit swaps, one
// rune for one rune so that positions stay aligned.
func normalize(rs []rune) []rune {
	out := make([]rune, len(rs))
	for i, r := range rs {
		switch r {
		case '0':
			r = 'o'
		case '1', '!':
			r = 'i'
		case '3':
			r = 'e'
		case '4', '@':
			r = 'a'
		case '5', '$':
			r = 's'
		case '7':
			r = 't'
		default:
			r = unicode.ToLower(r)
		}
		out[i] = r
	}
	return out
}

// longestCommonAt returns the length of the longest common word starting
// at rs[i] (0: none).
func longestCommonAt(rs []rune, i int) int {
	best := 0
	rest := string(rs[i:])
	for _, w := range commonWords {
		if len(w) > best && strings.HasPrefix(rest, w) {
			best = len(w) // the words are ASCII: bytes are runes
		}
	}
	return best
}

// commonWords are passwords and words at the top of the published
// leaked-password frequency lists, keyboard walks, and this product's own
// name, all lower-case ASCII of at least four characters, written as normalize
// leaves them ("trustnoi" for trustno1).
var commonWords = []string{
	"password", "passwort", "passw", "pass", "qwerty", "qwertz", "azerty", "asdf", "asdfgh", "asdfghjkl",
	"zxcv", "zxcvbn", "zxcvbnm", "qwertyuiop", "iqaz", "iqazzaq", "qazwsx", "iqaz2wsx", "letmein", "welcome",
	"admin", "administrator", "login", "iloveyou", "ilove", "love", "lovely", "monkey", "dragon", "master",
	"shadow", "sunshine", "princess", "football", "baseball", "soccer", "hockey", "batman", "superman", "trustno",
	"trustnoi", "whatever", "freedom", "secret", "hello", "hellow", "charlie", "michael", "jennifer", "jordan",
	"hunter", "killer", "ranger", "buster", "thomas", "robert", "daniel", "andrew", "joshua", "george",
	"jessica", "ashley", "amanda", "nicole", "summer", "winter", "spring", "autumn", "flower", "cheese",
	"computer", "internet", "starwars", "pokemon", "minecraft", "google", "apple", "orange", "banana", "chocolate",
	"cookie", "pepper", "ginger", "tigger", "maggie", "bailey", "daisy", "lucky", "happy", "smile",
	"angel", "angels", "blink", "matrix", "mustang", "ferrari", "corvette", "harley", "yankees", "liverpool",
	"chelsea", "arsenal", "barcelona", "madrid", "london", "paris", "berlin", "america", "canada", "france",
	"changeme", "default", "guest", "test", "testing", "user", "root", "toor", "access", "abc",
	"abcd", "abcdef", "abcdefg", "iiii", "aaaa", "oooo", "sotto", "signal",
	"qwer", "wasd", "zaqi", "xsw2", "mnbvcxz", "poiuytrewq", "lkjhgfdsa", "monday",
	"friday", "sunday", "january", "december", "family", "forever", "mother", "father", "sister", "brother",
	"baby", "babygirl", "princesa", "contrasena", "motdepasse", "passe",
}

// ChangePassphrase re-wraps the data key under newPassphrase, which must
// pass the passphrase policy (minBits as Options.MinPassphraseBits: zero
// for the default) and differ from the duress passphrase. old must be the
// current passphrase (ErrWrongPassphrase otherwise; not counted against
// the failed-unlock limit, since the store is open). The unlock policy
// stays as it was.
func (s *Store) ChangePassphrase(old, newPassphrase []byte, minPassphraseBits float64, rnd io.Reader) error {
	if err := CheckPassphrase(newPassphrase, minBits(minPassphraseBits)); err != nil {
		return err
	}
	return s.updateKeyFile(func(kf *keyFile) error {
		dk, err := kf.unwrap(old)
		if err != nil {
			return err
		}
		defer clear(dk)
		if len(kf.DuressHash) > 0 {
			h := deriveWrapKey(newPassphrase, kf.DuressSalt, kf.Params)
			defer clear(h)
			if hmac.Equal(h, kf.DuressHash) {
				return errors.New("store: the passphrase must differ from the duress passphrase")
			}
		}
		nk, err := newKeyFile(rnd, newPassphrase, dk, kf.Params)
		if err != nil {
			return err
		}
		kf.Salt, kf.Nonce, kf.Wrapped = nk.Salt, nk.Nonce, nk.Wrapped
		return nil
	})
}
