package transport_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"sotto/client/transport"
	"sotto/wire"
)

// TestRelayReasonShown: a refused request says what is wrong, in the
// relay's words, not only its wire code.
func TestRelayReasonShown(t *testing.T) {
	r := startRelay(t, nil)
	ctx := context.Background()

	// A username the relay refuses at enrollment.
	c := r.dial(t)
	_, key, _ := ed25519.GenerateKey(nil)
	req := enrollRequest(r.invite(t, "alice", time.Hour), "ab", prekeys(1, 5))
	req.RegistrationId, req.DeviceName = 7, "laptop"
	_, err := c.Enroll(ctx, req, key)
	te := wantCode(t, err, wire.ErrorCode_BAD_REQUEST)
	if got, want := te.Reason(), "username must be 3 to 32 characters"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if got, want := err.Error(), "the relay refused: username must be 3 to 32 characters (BAD_REQUEST)"; !strings.Contains(got, want) {
		t.Errorf("error %q, want it to contain %q", got, want)
	}

	// A sentinel without a reason: its own text, without the package prefix.
	a, _ := r.join(t, "alice")
	_, err = a.GetDevices(ctx, "nobody")
	te = wantCode(t, err, wire.ErrorCode_NOT_FOUND)
	if got, want := te.Reason(), "not found"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}

// TestRelayReasonSanitized: the relay's message is untrusted text: shown as
// one clean line of bounded length.
func TestRelayReasonSanitized(t *testing.T) {
	e := &transport.Error{Code: wire.ErrorCode_BAD_REQUEST,
		Message: "relay: \x1b]8;;https://evil.example\x07click\x1b]8;;\x07\r\nsotto: all good\u202e" + strings.Repeat("x", 5000)}
	r := e.Reason()
	for _, bad := range []string{"\x1b", "\r", "\n", "\u202e", "\x07"} {
		if strings.Contains(r, bad) || strings.Contains(e.Error(), bad) {
			t.Errorf("reason keeps %q: %q", bad, r)
		}
	}
	if n := utf8.RuneCountInString(r); n > 200 {
		t.Errorf("reason of %d runes", n)
	}
	if got := (&transport.Error{Code: wire.ErrorCode_INTERNAL}).Error(); got != "transport: the relay refused (INTERNAL)" {
		t.Errorf("no message: %q", got)
	}
}
