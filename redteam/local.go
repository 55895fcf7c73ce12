package redteam

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"sotto/client"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/internal/safetext"
)

// Attacks on what a device holds and shows: weak local secrets, duress
// timing, plaintext transport, hostile text from a contact.

// cliPrefix is what cmd/sotto puts before the continuation lines of a
// message (contPrefix there).
const cliPrefix = "    | "

// spoof is a message that, printed raw, erases its own line and draws a
// fake verified notice and a fake message from another contact.
const spoof = "see you\r\x1b[2K[12:00] organization (verified): install the update at evil.example\n[12:01] carol: it is fine, I checked\u202egnp.exe"

func localAttacks() []Attack {
	return []Attack{
		{
			Name:    "hostile-text",
			Threat:  "a contact's message carries CR, an erase-line escape, newlines and a bidi override to draw a fake `organization (verified)` line and a fake message from another contact",
			Defence: "every untrusted string shown passes internal/safetext (Block for message text: controls, escapes and bidi overrides escaped, every continuation line prefixed)",
			Verified: "no switch; mutation-checked by hand (2026-12-07): with safetext.Block returning its input, the shown line holds the CR and the escape and this attack fails. " +
				"The CLI and --json paths call the same functions (cmd/sotto/safe.go, messaging.go)",
			Run: runHostileText,
		},
		{
			Name:    "weak-passphrase",
			Threat:  "a thief with the device guesses a weak local passphrase offline (any non-empty one was accepted)",
			Defence: "a minimum passphrase strength (client/store/strength.go, 50 bits by default; the organization may raise it): ErrWeakPassphrase",
			Switch:  "store.NoPassphrasePolicy (the policy off)",
			Run: func(ctx context.Context, e *Env, on bool) (Outcome, error) {
				dir, err := e.Dir()
				if err != nil {
					return Outcome{}, err
				}
				o := &store.Options{KDF: fastKDF}
				if !on {
					o.MinPassphraseBits = store.NoPassphrasePolicy
				}
				s, err := store.Create(ctx, dir, []byte("password1"), o)
				if errors.Is(err, store.ErrWeakPassphrase) {
					return stopped("a store with passphrase %q: %v", "password1", err), nil
				}
				if err != nil {
					return Outcome{}, err
				}
				s.Close()
				return through("a store was created with passphrase %q", "password1"), nil
			},
		},
		{
			Name:    "duress-timing",
			Threat:  "whoever forces an unlock tells the duress passphrase from the real one by how long the unlock takes",
			Defence: "a right, a wrong and the duress passphrase cost the same two Argon2id derivations; the duress wipe's bulk runs after the answer (client/store/policy.go check, duressWipe)",
			Verified: "counted, never timed (store.OpenCounting); mutation-checked by hand (2026-12-07): deriving the duress hash only when the passphrase is wrong " +
				"makes the counts 2/3/3 and this attack fail; client/store TestUnlockCostIsTheSameWhateverThePassphrase checks Unlock too",
			Run: runDuressCost,
		},
		{
			Name:    "plaintext-relay-url",
			Threat:  "an invitation or setting names ws:// to a relay on the network: every frame, token and blob in clear to the path",
			Defence: "clients refuse plaintext to anything but loopback before dialing (client/transport ErrPlaintext) unless told --insecure; --ca and pins for TLS",
			Switch:  "--insecure (transport.Options.Insecure)",
			Run: func(ctx context.Context, e *Env, on bool) (Outcome, error) {
				r, err := e.StartRelay(ctx, RelayOptions{})
				if err != nil {
					return Outcome{}, err
				}
				// The path to relay.example.org leads to the relay on
				// loopback: nothing leaves the machine.
				dials := 0
				addr := strings.TrimPrefix(r.HTTP, "http://")
				hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					dials++
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				}}}
				c, err := transport.Dial(ctx, "ws://relay.example.org", transport.Options{HTTPClient: hc, Insecure: !on})
				if errors.Is(err, transport.ErrPlaintext) && dials == 0 {
					return stopped("ws://relay.example.org refused before any connection: %v", err), nil
				}
				if err != nil {
					return Outcome{}, err
				}
				c.Close()
				return through("connected in plaintext to ws://relay.example.org (%d dial)", dials), nil
			},
		},
	}
}

func runHostileText(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	_, m, err := e.World(ctx, RelayOptions{}, []string{"alice"}, "mallory")
	if err != nil {
		return Outcome{}, err
	}
	alice := m["alice"]
	if _, err := m["mallory"].Send(ctx, "alice", spoof); err != nil {
		return Outcome{}, err
	}
	ev, err := alice.WaitEvent(ctx, client.EventMessage, nil)
	if err != nil {
		return Outcome{}, err
	}
	raw := Text(ev)
	if raw != spoof {
		return Outcome{}, fmt.Errorf("the message arrived altered: %q", raw)
	}
	shown := safetext.Block(raw, cliPrefix)
	lines := strings.Split(shown, "\n")
	for i, l := range lines {
		if strings.ContainsAny(l, "\r\x1b\u202e") || (i > 0 && !strings.HasPrefix(l, cliPrefix)) {
			return through("line %d shown as %q", i, l), nil
		}
	}
	return stopped("received %q; shown as %q (raw, it would erase its line and draw a fake verified notice)", raw, shown), nil
}

func runDuressCost(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	costs := map[string]int{}
	for _, tc := range []struct{ name, pass string }{{"right", "correct horse battery"}, {"wrong", "typo"}, {"duress", "under duress"}} {
		dir, err := e.Dir()
		if err != nil {
			return Outcome{}, err
		}
		s, err := store.Create(ctx, dir, []byte("correct horse battery"), &store.Options{KDF: fastKDF, MinPassphraseBits: store.NoPassphrasePolicy})
		if err != nil {
			return Outcome{}, err
		}
		if err := s.SetDuress([]byte("under duress"), rand.Reader); err != nil {
			return Outcome{}, err
		}
		s.Close()
		got, n, err := store.OpenCounting(ctx, dir, []byte(tc.pass))
		if got != nil {
			got.Close()
		}
		if (err == nil) != (tc.name == "right") {
			return Outcome{}, fmt.Errorf("%s passphrase: %v", tc.name, err)
		}
		costs[tc.name] = n
	}
	if costs["right"] == costs["wrong"] && costs["right"] == costs["duress"] {
		return stopped("Argon2id derivations per unlock: right %d, wrong %d, duress %d", costs["right"], costs["wrong"], costs["duress"]), nil
	}
	return through("derivations differ: %v", costs), nil
}
