package org

import (
	"fmt"
	"time"
)

// Subscription warning thresholds: the client warns 14 days and again 3
// days before the subscription ends.
const (
	WarnFirst = 14 * 24 * time.Hour
	WarnLast  = 3 * 24 * time.Hour
)

// SubscriptionWarning returns what to tell the user about a subscription
// ending at expires ("" when nothing yet; a zero expires is unknown).
func SubscriptionWarning(expires, now time.Time) string {
	if expires.IsZero() {
		return ""
	}
	left := expires.Sub(now)
	days := int((left + 24*time.Hour - 1) / (24 * time.Hour))
	date := expires.UTC().Format(time.DateOnly)
	switch {
	case left <= 0:
		return fmt.Sprintf("the subscription ended on %s: history stays readable, sending is disabled; ask your organization to extend it", date)
	case left <= WarnLast:
		return fmt.Sprintf("the subscription ends in %d day(s), on %s: after that this device cannot send", days, date)
	case left <= WarnFirst:
		return fmt.Sprintf("the subscription ends in %d days, on %s", days, date)
	}
	return ""
}
