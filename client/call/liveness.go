package call

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sotto/client"
	"sotto/client/content"
)

// A call that holds up when the relay or the peer goes away.
//
// Three things end a call whose signalling path is gone:
//   - The peer's DTLS close. A peer that hangs up closes its peer
//     connection, which sends a DTLS close_notify; pion then closes ours.
//     On a live call that is the hang-up itself, whatever became of the
//     HANGUP signal (the relay may be down). The call ends peerCloseGrace
//     later (a HANGUP that arrives meanwhile gives its reason), and its
//     duration runs to the close, not to the end.
//   - The media watchdog. A connected call that receives no audio (RTP)
//     from the peer for Options.MediaTimeout ends with ErrConnectionLost:
//     a peer that vanished without a close (killed, unplugged) would
//     otherwise hold this device "busy" for good. The pion client sends a
//     packet every 20 ms, silence included; a browser's Opus with DTX
//     still sends one every 400 ms. RTCP does not count: a peer whose
//     sending stopped may still send receiver reports.
//   - Retried hang-ups. HANGUP and REJECT go through the client's normal
//     send path; one that fails (relay down) is tried again with back-off
//     until it is delivered or Options.SignalRetryFor has passed, so a
//     callee still ringing stops once the relay is back.

// peerCloseGrace is how long a call waits, after the peer's DTLS close, for
// the HANGUP that says why.
const peerCloseGrace = time.Second

// Back-off of a retried signal.
const (
	retryMin = 250 * time.Millisecond
	retryMax = 5 * time.Second
)

// heard notes that audio (RTP) arrived from the peer.
func (c *Call) heard() { c.lastHeard.Store(int64(time.Since(c.base))) }

// silentFor is how long the peer has sent nothing.
func (c *Call) silentFor() time.Duration {
	return time.Since(c.base) - time.Duration(c.lastHeard.Load())
}

// peerClosed ends a live call whose peer closed its DTLS connection.
func (c *Call) peerClosed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == StateEnded || !c.closedAt.IsZero() {
		return
	}
	c.closedAt = c.m.opts.Now()
	c.m.log.Debug("call: the peer closed the connection")
	// The timer's func is owned by the manager's wait group from now on,
	// so that Manager.Close waits for an end it has started (and the
	// goroutines that end starts in turn).
	c.m.wg.Add(1)
	c.closeTimer = time.AfterFunc(peerCloseGrace, func() {
		defer c.m.wg.Done()
		c.end(nil)
	})
}

// watchMedia ends the call when the peer falls silent for MediaTimeout.
func (c *Call) watchMedia() {
	defer c.wg.Done()
	limit := c.m.opts.MediaTimeout
	t := time.NewTicker(max(limit/5, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		silent := c.silentFor()
		if silent <= limit {
			continue
		}
		c.mu.Lock()
		if c.closedAt.IsZero() {
			c.closedAt = c.m.opts.Now().Add(-silent) // the call's audio ended then
		}
		c.mu.Unlock()
		why := fmt.Errorf("%w: nothing from the peer for %v", ErrConnectionLost, silent.Round(time.Second))
		// failed waits for this goroutine (end waits for c.wg).
		c.m.goOwned(func() { c.failed(why) })
		return
	}
}

// retried reports whether a signal of this kind is retried until delivered.
func retried(s *content.CallSignal) bool {
	return s.Kind == content.CallSignal_HANGUP || s.Kind == content.CallSignal_REJECT
}

// sendRetrying delivers s to user, trying again with back-off while it
// fails, for at most Options.SignalRetryFor or until the manager closes.
func (m *Manager) sendRetrying(ctx context.Context, user string, s *content.CallSignal) error {
	deadline := time.Now().Add(m.opts.SignalRetryFor)
	wait := retryMin
	for {
		sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := m.sendNow(sctx, user, s)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		m.log.Debug("call signal not sent; retrying", "kind", s.Kind.String(), "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// transient reports whether a failed send may succeed later: not when the
// organization forbids calls, the device may not send, or the peer's
// identity changed (the person must act first).
func transient(err error) bool {
	var changed *client.IdentityChangedError
	switch {
	case errors.Is(err, client.ErrForbiddenByPolicy), errors.Is(err, client.ErrExpired),
		errors.Is(err, client.ErrRevoked), errors.As(err, &changed):
		return false
	}
	return true
}

// hangupSignal sends a HANGUP or REJECT now; if that fails, it keeps
// trying in the background (sendRetrying) and reports nil: the call ends
// here either way, and the peer is told once the relay takes the signal.
func (m *Manager) hangupSignal(ctx context.Context, user string, s *content.CallSignal) error {
	err := m.sendNow(ctx, user, s)
	if err == nil || !transient(err) {
		return err
	}
	m.log.Info("call signal not sent; retrying in the background", "to", user, "kind", s.Kind.String(), "err", err)
	m.send(user, s)
	return nil
}
