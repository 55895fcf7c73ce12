package relay

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"sotto/wire"
)

// TestErrorResponseReason: a ReasonError's reason is the message the client
// sees; any other detail, wrapped around it or around a bare sentinel, stays
// in the relay's logs.
func TestErrorResponseReason(t *testing.T) {
	_, usernameErr := NormalizeUsername("ab")
	cases := []struct {
		name    string
		err     error
		code    wire.ErrorCode
		message string
	}{
		{"reason", usernameErr, wire.ErrorCode_BAD_REQUEST, "username must be 3 to 32 characters"},
		{"badRequest", badRequest("too many prekeys in one upload"), wire.ErrorCode_BAD_REQUEST, "too many prekeys in one upload"},
		{"detail around a reason", fmt.Errorf("store said %w: secret detail", badRequest("bad prekey")), wire.ErrorCode_BAD_REQUEST, "bad prekey"},
		{"detail around a sentinel", fmt.Errorf("%w: pq: secret detail", ErrNotFound), wire.ErrorCode_NOT_FOUND, "relay: not found"},
		{"two sentinels: the first in the table", fmt.Errorf("%w: %w", ErrRateLimited, badRequest("bad ack")), wire.ErrorCode_BAD_REQUEST, "bad ack"},
		{"conflict", withReason(ErrConflict, "the organization exists already"), wire.ErrorCode_CONFLICT, "the organization exists already"},
		{"unknown", errors.New("secret detail"), wire.ErrorCode_INTERNAL, "internal error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r wire.Response
			errorResponse(&r, c.err)
			if r.Code != c.code || r.Message != c.message {
				t.Errorf("got %s %q, want %s %q", r.Code, r.Message, c.code, c.message)
			}
			if strings.Contains(r.Message, "secret") {
				t.Errorf("message leaks detail: %q", r.Message)
			}
		})
	}
	// The reason keeps the sentinel for callers that branch on it.
	if !errors.Is(usernameErr, ErrBadRequest) || ErrorCode(usernameErr) != wire.ErrorCode_BAD_REQUEST {
		t.Errorf("%v is not ErrBadRequest", usernameErr)
	}
	if got := usernameErr.Error(); got != "relay: bad request: username must be 3 to 32 characters" {
		t.Errorf("logged text %q", got)
	}
}
