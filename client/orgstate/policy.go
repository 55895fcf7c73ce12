package orgstate

import (
	"context"
	"time"

	"sotto/client/content"
)

// Enforcement of the org policy where it applies. Sending a file is
// refused when attachments are forbidden; sending a call signal is
// refused, and incoming call signals are dropped, when calls are
// forbidden (except the signals that end or decline a call, so a call
// already ringing can still be refused); a timer outside the allowed
// range is refused, and a received timer change outside it is clamped
// into it.

// CallSignalAllowed reports whether the policy in force lets s be sent or
// handled: under a no-calls policy only BUSY, REJECT and HANGUP pass.
func CallSignalAllowed(ctx context.Context, db Getter, s *content.CallSignal) bool {
	switch s.GetKind() {
	case content.CallSignal_BUSY, content.CallSignal_REJECT, content.CallSignal_HANGUP:
		return true
	}
	return PolicyIn(ctx, db).CallsAllowed()
}

// ClampTimer brings a received disappearing timer (seconds, 0: off) into
// the policy's range rather than refusing it: the peer's change still
// shows in the history, and this device keeps to the organization's rule
// (a timer that is too long, or off when one is required, becomes the
// maximum, or the minimum when no maximum is set; one too short becomes
// the minimum). Refusing it would leave the two sides with different
// timers without either knowing.
func ClampTimer(ctx context.Context, db Getter, secs uint32) uint32 {
	p := PolicyIn(ctx, db)
	if p.AllowsDisappearing(time.Duration(secs) * time.Second) {
		return secs
	}
	lo, hi := p.DisappearingMinSeconds, p.DisappearingMaxSeconds
	switch {
	case secs != 0 && lo != 0 && secs < lo:
		return lo
	case hi != 0:
		return hi
	default:
		return lo
	}
}
