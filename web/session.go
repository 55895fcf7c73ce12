package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"
)

// secretLen is the length of login tokens and session ids, in bytes.
const secretLen = 32

// Limits on what the server keeps.
const (
	tokenTTL    = 10 * time.Minute // an unused login token expires
	sessionTTL  = 24 * time.Hour   // a session lasts at most this long
	maxTokens   = 8                // outstanding login tokens
	maxSessions = 16               // live sessions (tabs share one)
)

// secretHash is how tokens and session ids are kept: only their SHA-256,
// looked up in a map. Finding an entry by hash does not leak the secret's
// bytes through timing, since an attacker controls only the preimage.
type secretHash [sha256.Size]byte

func hashSecret(s string) secretHash { return sha256.Sum256([]byte(s)) }

func newSecret() string {
	b := make([]byte, secretLen)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// session is what a login token turned into: valid only on the host
// (127.0.0.1:port or localhost:port) it was created on.
type session struct {
	host    string
	expires time.Time
}

// keyring holds the outstanding login tokens and the live sessions.
type keyring struct {
	now func() time.Time
	// keepTokens leaves a redeemed token valid: only for the test that
	// shows a reused token is an attack that spending it stops.
	keepTokens bool

	mu       sync.Mutex
	tokens   map[secretHash]time.Time // token → expiry
	sessions map[secretHash]session
}

func newKeyring(now func() time.Time) *keyring {
	return &keyring{now: now, tokens: map[secretHash]time.Time{}, sessions: map[secretHash]session{}}
}

// mintToken returns a new single-use login token.
func (k *keyring) mintToken() string {
	t := newSecret()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.expireLocked()
	for len(k.tokens) >= maxTokens {
		k.dropOldestToken()
	}
	k.tokens[hashSecret(t)] = k.now().Add(tokenTTL)
	return t
}

// redeem spends a login token: on success it returns a new session id,
// bound to host, and the token is gone.
func (k *keyring) redeem(token, host string) (string, bool) {
	if token == "" {
		return "", false
	}
	h := hashSecret(token)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.expireLocked()
	if _, ok := k.tokens[h]; !ok {
		return "", false
	}
	if !k.keepTokens {
		delete(k.tokens, h)
	}
	for len(k.sessions) >= maxSessions {
		k.dropOldestSession()
	}
	id := newSecret()
	k.sessions[hashSecret(id)] = session{host: host, expires: k.now().Add(sessionTTL)}
	return id, true
}

// check reports whether id is a live session created on host.
func (k *keyring) check(id, host string) bool {
	if id == "" {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.expireLocked()
	s, ok := k.sessions[hashSecret(id)]
	return ok && s.host == host
}

// end forgets a session (logout).
func (k *keyring) end(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.sessions, hashSecret(id))
}

// endAll forgets every session and token (the agent locked or stopped
// serving the app).
func (k *keyring) endAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.sessions)
	clear(k.tokens)
}

func (k *keyring) expireLocked() {
	now := k.now()
	for h, exp := range k.tokens {
		if !now.Before(exp) {
			delete(k.tokens, h)
		}
	}
	for h, s := range k.sessions {
		if !now.Before(s.expires) {
			delete(k.sessions, h)
		}
	}
}

func (k *keyring) dropOldestToken() {
	var oldest secretHash
	var first time.Time
	for h, exp := range k.tokens {
		if first.IsZero() || exp.Before(first) {
			oldest, first = h, exp
		}
	}
	delete(k.tokens, oldest)
}

func (k *keyring) dropOldestSession() {
	var oldest secretHash
	var first time.Time
	for h, s := range k.sessions {
		if first.IsZero() || s.expires.Before(first) {
			oldest, first = h, s.expires
		}
	}
	delete(k.sessions, oldest)
}
