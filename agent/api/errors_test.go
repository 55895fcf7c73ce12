package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"sotto/client"
	"sotto/client/store"
	"sotto/release"
)

// The client core's errors map to their stable kinds, wrapped or not.
func TestErrorOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		kind Kind
	}{
		{store.ErrWrongPassphrase, KindWrongPassphrase},
		{&store.AttemptsError{Left: 3}, KindWrongPassphrase},
		{client.ErrLocked, KindLocked},
		{fmt.Errorf("x: %w", client.ErrRevoked), KindRevoked},
		{&client.IdentityChangedError{User: "bob"}, KindIdentityChanged},
		{client.ErrNoAttachment, KindNotFound},
		{client.ErrViewedOnce, KindViewedOnce},
		{store.ErrNoStore, KindNoDevice},
		{client.ErrNoHistory, KindNotFound},
		{fmt.Errorf("history: %w", client.ErrHistoryTampered), KindRefused},
		{fmt.Errorf("v1.3.0: %w", release.ErrBadSignature), KindRefused},
		{release.ErrNotLogged, KindRefused},
		{errors.New("anything else"), KindInternal},
	} {
		e := ErrorOf(c.err)
		if e.Kind != c.kind || e.Message != c.err.Error() {
			t.Errorf("%v: %+v, want kind %s", c.err, e, c.kind)
		}
	}
	if e := ErrorOf(&store.AttemptsError{Left: 3}); e.AttemptsLeft != 3 {
		t.Errorf("attempts left %d", e.AttemptsLeft)
	}
	if e := ErrorOf(&client.IdentityChangedError{User: "bob"}); e.User != "bob" {
		t.Errorf("user %q", e.User)
	}
	if KindLocked.Status() != http.StatusLocked || KindInternal.Status() != http.StatusInternalServerError ||
		KindRefused.Status() != http.StatusUnprocessableEntity {
		t.Error("status table")
	}
}
