package api

import (
	"errors"
	"net/http"

	"sotto/client"
	"sotto/client/groups"
	"sotto/client/store"
	"sotto/release"
)

// kinds maps the client core's errors to API kinds: the one table (the
// first match wins).
var kinds = []struct {
	err  error
	kind Kind
}{
	{store.ErrWrongPassphrase, KindWrongPassphrase},
	{store.ErrWipedAfterFailures, KindWiped},
	{store.ErrNoStore, KindNoDevice},
	{client.ErrNotEnrolled, KindNoDevice},
	{client.ErrLocked, KindLocked},
	{client.ErrExpired, KindExpired},
	{client.ErrRevoked, KindRevoked},
	{client.ErrNotConnected, KindUnavailable},
	{client.ErrNoAttachment, KindNotFound},
	{client.ErrNoMessage, KindNotFound},
	{client.ErrViewedOnce, KindViewedOnce},
	{client.ErrForbiddenByPolicy, KindForbidden},
	{client.ErrSealedRefused, KindForbidden},
	{client.ErrNotAuthor, KindBadRequest},
	{client.ErrTooLate, KindBadRequest},
	{client.ErrIsDeleted, KindBadRequest},
	{client.ErrBadTimer, KindBadRequest},
	{client.ErrNoDevices, KindNotFound},
	{store.ErrWeakPassphrase, KindBadRequest},
	{groups.ErrNoGroup, KindNotFound},
	{groups.ErrNotMember, KindNotFound},
	{groups.ErrRemovedHere, KindForbidden},
	{groups.ErrNotCertified, KindForbidden},
	{groups.ErrTooLarge, KindBadRequest},
	{groups.ErrCommitRace, KindUnavailable},
	{groups.ErrNotAllowed, KindForbidden},
	{groups.ErrBadPolicy, KindBadRequest},
	{groups.ErrNoMessage, KindNotFound},
	{groups.ErrNotAuthor, KindBadRequest},
	{groups.ErrTooLate, KindBadRequest},
	{groups.ErrIsDeleted, KindBadRequest},
	{groups.ErrBadTimer, KindBadRequest},
	{client.ErrGroupNoFile, KindNotFound},
	{client.ErrGroupViewOnce, KindBadRequest},
	{client.ErrGroupKeyMismatch, KindForbidden},
	{client.ErrNoOrg, KindForbidden},
	{client.ErrNotCertified, KindForbidden},
	{client.ErrNotOrgAdmin, KindForbidden},
	{client.ErrBadLinkCode, KindBadRequest},
	{client.ErrBadScan, KindBadRequest},
	{client.ErrKeyMoved, KindIdentityChanged},
	{client.ErrNoHistory, KindNotFound},
	{client.ErrHistoryTampered, KindRefused},
	{client.ErrBadHistory, KindRefused},
	{release.ErrMalformed, KindRefused},
	{release.ErrBadSignature, KindRefused},
	{release.ErrFileMismatch, KindRefused},
	{release.ErrNotApproved, KindRefused},
	{release.ErrNotLogged, KindRefused},
	{release.ErrNotWitness, KindRefused},
	{release.ErrTooOld, KindRefused},
	{release.ErrPlatform, KindRefused},
}

// ErrorOf returns the API error of err: its kind from the table, its
// text as the message (the API's clients are the device's owner).
func ErrorOf(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	e := &Error{Kind: KindInternal, Message: err.Error()}
	var att *store.AttemptsError
	var ic *client.IdentityChangedError
	switch {
	case errors.As(err, &att):
		e.Kind, e.AttemptsLeft = KindWrongPassphrase, att.Left
		return e
	case errors.As(err, &ic):
		e.Kind, e.User = KindIdentityChanged, ic.User
		return e
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			e.Kind = k.kind
			return e
		}
	}
	return e
}

// Status is the HTTP status of an error kind.
func (k Kind) Status() int {
	switch k {
	case KindBadRequest:
		return http.StatusBadRequest
	case KindNotFound, KindNoDevice:
		return http.StatusNotFound
	case KindWrongPassphrase:
		return http.StatusUnauthorized
	case KindLocked:
		return http.StatusLocked
	case KindIdentityChanged, KindViewOnce:
		return http.StatusConflict
	case KindExpired, KindForbidden:
		return http.StatusForbidden
	case KindViewedOnce, KindRevoked, KindWiped:
		return http.StatusGone
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindRefused:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}
