package relay

import (
	"errors"
	"fmt"
	"time"

	"sotto/wire"
)

// Sentinel errors. Storage backends return the storage ones; handlers
// return the rest. Each maps to exactly one wire code in errorTable.
var (
	ErrBadRequest      = errors.New("relay: bad request")
	ErrUnauthenticated = errors.New("relay: not authenticated")
	ErrBadSignature    = errors.New("relay: authentication failed")
	ErrForbidden       = errors.New("relay: forbidden")
	ErrNotFound        = errors.New("relay: not found")
	ErrConflict        = errors.New("relay: username taken")
	ErrBadCode         = errors.New("relay: activation code invalid, expired or used up")
	ErrBadToken        = errors.New("relay: link token invalid or expired")
	ErrTooManyDevices  = errors.New("relay: too many devices")
	ErrRateLimited     = errors.New("relay: rate limited")
	ErrTooLarge        = errors.New("relay: too large")
	ErrUpgrade         = errors.New("relay: protocol version not supported, upgrade")
	ErrPreKeys         = errors.New("relay: device has no prekeys")
	ErrExpired         = errors.New("relay: subscription expired")
	ErrRevoked         = errors.New("relay: revoked")
	ErrUnavailable     = errors.New("relay: unavailable")
	ErrClosed          = errors.New("relay: store closed")
)

// errorTable is THE mapping from internal errors to wire codes. The
// sentinel's text is the safe message sent to the client, unless a
// ReasonError gives a reason for it; any other wrapped detail is only
// logged.
var errorTable = []struct {
	err  error
	code wire.ErrorCode
}{
	// Before the sentinels they wrap: their text is the safe message.
	{ErrNoOrg, wire.ErrorCode_FORBIDDEN},
	{ErrNotCertified, wire.ErrorCode_FORBIDDEN},
	{ErrBadRequest, wire.ErrorCode_BAD_REQUEST},
	{ErrUnauthenticated, wire.ErrorCode_UNAUTHENTICATED},
	{ErrBadSignature, wire.ErrorCode_UNAUTHENTICATED},
	{ErrForbidden, wire.ErrorCode_FORBIDDEN},
	{ErrNotFound, wire.ErrorCode_NOT_FOUND},
	{ErrConflict, wire.ErrorCode_CONFLICT},
	{ErrStaleAccessKey, wire.ErrorCode_CONFLICT},
	{ErrBadCode, wire.ErrorCode_FORBIDDEN},
	{ErrBadToken, wire.ErrorCode_FORBIDDEN},
	{ErrTooManyDevices, wire.ErrorCode_FORBIDDEN},
	{ErrRateLimited, wire.ErrorCode_RATE_LIMITED},
	{ErrTooLarge, wire.ErrorCode_TOO_LARGE},
	{wire.ErrFrameTooLarge, wire.ErrorCode_TOO_LARGE},
	{ErrUpgrade, wire.ErrorCode_UPGRADE_REQUIRED},
	{ErrPreKeys, wire.ErrorCode_PREKEYS_EXHAUSTED},
	{ErrExpired, wire.ErrorCode_SUBSCRIPTION_EXPIRED},
	{ErrRevoked, wire.ErrorCode_REVOKED},
	{ErrUnavailable, wire.ErrorCode_UNAVAILABLE},
	{ErrClosed, wire.ErrorCode_UNAVAILABLE},
	{wire.ErrMalformed, wire.ErrorCode_BAD_REQUEST},
	{wire.ErrEmptyFrame, wire.ErrorCode_BAD_REQUEST},
}

// StaleError rejects a send whose device list does not match the
// recipient's current devices.
type StaleError struct {
	Missing, Extra, Mismatched []uint32
	Current                    []Device
	Username                   string
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("relay: stale device list (missing %v, extra %v, mismatched %v)", e.Missing, e.Extra, e.Mismatched)
}

// ReasonError is a sentinel with a reason the client is shown in place of
// the sentinel's text ("username must be 3 to 32 characters" rather than
// "bad request"). The relay writes the reason itself, about the client's own
// request: it holds no secret, no storage or network detail, and nothing
// about another account. Detail that must not leave the relay is wrapped
// with %w around the ReasonError, and is only logged.
type ReasonError struct {
	Err    error // a sentinel of errorTable: it gives the wire code
	Reason string
}

func (e *ReasonError) Error() string { return e.Err.Error() + ": " + e.Reason }
func (e *ReasonError) Unwrap() error { return e.Err }

// withReason returns sentinel with the safe reason format (see ReasonError).
func withReason(sentinel error, format string, args ...any) error {
	return &ReasonError{Err: sentinel, Reason: fmt.Sprintf(format, args...)}
}

// safeMessage returns the reason of the ReasonError in err's chain that
// explains sentinel, or fallback.
func safeMessage(err, sentinel error, fallback string) string {
	var r *ReasonError
	if errors.As(err, &r) && errors.Is(r.Err, sentinel) {
		return r.Reason
	}
	return fallback
}

// RateError is ErrRateLimited with a hint of when to retry.
type RateError struct{ RetryAfter time.Duration }

func (e *RateError) Error() string { return ErrRateLimited.Error() }
func (e *RateError) Unwrap() error { return ErrRateLimited }

// errorResponse fills code, safe message and details for err.
func errorResponse(resp *wire.Response, err error) {
	var stale *StaleError
	if errors.As(err, &stale) {
		resp.Code = wire.ErrorCode_STALE_DEVICES
		resp.Message = "stale device list"
		resp.Stale = &wire.StaleDevices{
			Missing: stale.Missing, Extra: stale.Extra, Mismatched: stale.Mismatched,
			Current: deviceList(stale.Username, stale.Current, false),
		}
		return
	}
	var rate *RateError
	if errors.As(err, &rate) {
		resp.RetryAfterMs = rate.RetryAfter.Milliseconds()
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			resp.Code = e.code
			resp.Message = safeMessage(err, e.err, e.err.Error())
			return
		}
	}
	resp.Code = wire.ErrorCode_INTERNAL
	resp.Message = "internal error"
}

// ErrorCode returns the wire code that err maps to.
func ErrorCode(err error) wire.ErrorCode {
	if err == nil {
		return wire.ErrorCode_OK
	}
	var r wire.Response
	errorResponse(&r, err)
	return r.Code
}
