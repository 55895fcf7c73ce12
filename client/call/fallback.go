package call

import (
	"context"
	"fmt"
	"time"

	"github.com/pion/webrtc/v4"

	"sotto/client"
	"sotto/client/content"
)

// Relayed media only when the direct path fails.
//
// A call starts with host candidates only: no TURN credentials are asked
// for and nothing is allocated, so a call that connects directly leaves no
// trace on the relay's TURN server. When ICE fails before the call ever
// connected, both sides keep the call: the caller asks the relay for TURN
// credentials and sends a new offer (same call id, addressed to the
// answering device) from a fresh peer connection that gathers relay
// candidates too; the callee answers it likewise. The DTLS fingerprints of
// the new offer and answer travel end to end like the first ones. A
// second failure ends the call (ErrConnectionFailed). pion cannot resume
// a peer connection whose first ICE attempt failed (its DTLS transport
// never started), hence a new one rather than an ICE restart.

// fallBackToTURN is called when ICE failed before the call connected. It
// reports whether the call goes on through TURN (the caller re-offers; the
// callee waits for that offer).
func (c *Call) fallBackToTURN() bool {
	c.mu.Lock()
	if c.withTURN || c.m.opts.RelayOnly || c.state != StateConnecting {
		c.mu.Unlock()
		return false
	}
	c.withTURN = true
	c.mu.Unlock()
	c.m.log.Info("call: no direct path; trying through the relay's TURN server")
	c.startLostTimer(2 * c.m.opts.ICEFailedTimeout)
	if !c.Outgoing {
		return true
	}
	c.m.goOwned(func() {
		ctx, cancel := context.WithTimeout(c.m.ctx, 20*time.Second)
		defer cancel()
		if err := c.reoffer(ctx); err != nil {
			c.failed(fmt.Errorf("%w: %w", ErrConnectionFailed, err))
		}
	})
	return true
}

// replacePeerConnection closes the failed peer connection and builds one
// with TURN.
func (c *Call) replacePeerConnection(ctx context.Context) error {
	c.mu.Lock()
	old := c.pc
	c.mu.Unlock()
	if old != nil {
		old.Close() // its Closed is ignored: DTLS never started
	}
	c.dtlsStarted.Store(false)
	c.dtlsFailed.Store(false)
	return c.newPeerConnection(ctx)
}

// reoffer (caller) sends an offer with relay candidates to the answering
// device.
func (c *Call) reoffer(ctx context.Context) error {
	if err := c.replacePeerConnection(ctx); err != nil {
		return err
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("call: offer: %w", err)
	}
	if err := c.pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("call: offer: %w", err)
	}
	sdp, err := c.gather(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.state != StateConnecting {
		c.mu.Unlock()
		return nil
	}
	c.reoffered = true
	c.mu.Unlock()
	return c.m.sendNow(ctx, c.Peer, &content.CallSignal{CallId: c.ID, Kind: content.CallSignal_OFFER, ToDevice: c.PeerDevice(), Sdp: sdp, Media: []string{"audio"}})
}

// isReoffer reports whether cs is the caller's offer with TURN for c.
func (c *Call) isReoffer(cs *client.CallSignal, self uint32) bool {
	return !c.Outgoing && c.Peer == cs.From && cs.Signal.ToDevice == self && cs.FromDevice == c.PeerDevice() &&
		c.State() == StateConnecting
}

// reanswer (callee) answers the caller's offer with TURN.
func (c *Call) reanswer(ctx context.Context, offer string) error {
	c.mu.Lock()
	c.withTURN = true
	c.remoteFP = sdpFingerprint(offer)
	c.mu.Unlock()
	if err := c.replacePeerConnection(ctx); err != nil {
		return err
	}
	c.startLostTimer(2 * c.m.opts.ICEFailedTimeout)
	return c.answerOffer(ctx, offer)
}

// reanswered (caller) applies the answer to its offer with TURN; it
// reports whether cs was that answer.
func (c *Call) reanswered(cs *client.CallSignal) bool {
	c.mu.Lock()
	if !c.reoffered || cs.FromDevice != c.peerDevice || c.state != StateConnecting {
		c.mu.Unlock()
		return false
	}
	c.reoffered = false
	c.remoteFP = sdpFingerprint(cs.Signal.Sdp)
	pc := c.pc
	c.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: cs.Signal.Sdp}); err != nil {
		c.failed(fmt.Errorf("call: answer: %w", err))
	}
	return true
}
