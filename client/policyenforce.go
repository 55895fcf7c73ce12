package client

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/content"
	"sotto/client/org"
)

// Enforcement of the org policy where it applies. SendFile refuses when
// attachments are forbidden; SendCallSignal refuses to send, and incoming
// call signals are dropped, when calls are forbidden (except the signals
// that end or decline a call, so a call already ringing can still be
// refused); SetTimer refuses a timer outside the allowed range, and a
// received timer change outside it is clamped into it.

// policyIn reads the org policy in force from db (a store or a
// transaction: inside Update only the transaction may be used). nil: no
// policy, or an unreadable one, read as the defaults.
func policyIn(ctx context.Context, db kv) *org.Policy {
	b, err := getOpt(ctx, db, tblOrg, "policy")
	if err != nil || b == nil {
		return nil
	}
	var p org.Policy
	if proto.Unmarshal(b, &p) != nil {
		return nil
	}
	return &p
}

// callSignalAllowed reports whether the policy in force lets s be sent or
// handled: under a no-calls policy only BUSY, REJECT and HANGUP pass.
func callSignalAllowed(ctx context.Context, db kv, s *content.CallSignal) bool {
	switch s.GetKind() {
	case content.CallSignal_BUSY, content.CallSignal_REJECT, content.CallSignal_HANGUP:
		return true
	}
	return policyIn(ctx, db).CallsAllowed()
}

// clampTimer brings a received disappearing timer (seconds, 0: off) into
// the policy's range rather than refusing it: the peer's change still
// shows in the history, and this device keeps to the organization's rule
// (a timer that is too long, or off when one is required, becomes the
// maximum, or the minimum when no maximum is set; one too short becomes
// the minimum). Refusing it would leave the two sides with different
// timers without either knowing.
func clampTimer(ctx context.Context, db kv, secs uint32) uint32 {
	p := policyIn(ctx, db)
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
