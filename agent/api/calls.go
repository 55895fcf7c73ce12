package api

import (
	"context"
	"net/http"
)

// Call is a live (or just ended) call of an agent that carries calls.
type Call struct {
	ID         ID     `json:"id"`
	Peer       string `json:"peer"`
	PeerDevice uint32 `json:"peer_device,omitempty"`
	Outgoing   bool   `json:"outgoing,omitempty"`
	// State: dialing, ringing, connecting, active, ended.
	State           string `json:"state"`
	Muted           bool   `json:"muted,omitempty"`
	DurationSeconds int64  `json:"duration_seconds,omitempty"`
	// Ended calls: why, when not a normal hang-up (reason: busy,
	// rejected, no_answer, missed, answered_elsewhere,
	// declined_elsewhere, canceled, fingerprint_mismatch,
	// connection_failed, connection_lost, peer_failed, unverified).
	Reason string `json:"reason,omitempty"`
	Error  *Error `json:"error,omitempty"`
}

// Call request and answer bodies.
type (
	DialRequest struct {
		User string `json:"user"`
		// AudioIn is a WAV file (16-bit PCM mono, 8 or 48 kHz) the agent
		// plays into the call (default: silence); AudioOut a file it
		// records the peer to when the call ends (default: none).
		// Absolute paths.
		AudioIn  string `json:"audio_in,omitempty"`
		AudioOut string `json:"audio_out,omitempty"`
		Muted    bool   `json:"muted,omitempty"`
	}
	AnswerRequest struct {
		AudioIn  string `json:"audio_in,omitempty"`
		AudioOut string `json:"audio_out,omitempty"`
		Muted    bool   `json:"muted,omitempty"`
	}
	MuteRequest struct {
		Muted bool `json:"muted"`
	}
	CallAnswer struct {
		Call *Call `json:"call"`
	}
	CallsAnswer struct {
		Calls []*Call `json:"calls"`
	}
)

func callPath(id ID, rest string) string {
	b, _ := id.MarshalText()
	return "/calls/" + string(b) + rest
}

// Calls lists the live calls.
func (c *Client) Calls(ctx context.Context) ([]*Call, error) {
	var a CallsAnswer
	return a.Calls, c.Do(ctx, http.MethodGet, "/calls", nil, &a)
}

// Dial calls a user (every device of theirs rings).
func (c *Client) Dial(ctx context.Context, r DialRequest) (*Call, error) {
	var a CallAnswer
	return a.Call, c.Do(ctx, http.MethodPost, "/calls", r, &a)
}

// Answer answers a ringing incoming call.
func (c *Client) Answer(ctx context.Context, id ID, r AnswerRequest) (*Call, error) {
	var a CallAnswer
	return a.Call, c.Do(ctx, http.MethodPost, callPath(id, "/answer"), r, &a)
}

// Reject declines a ringing incoming call.
func (c *Client) Reject(ctx context.Context, id ID) error {
	return c.Do(ctx, http.MethodPost, callPath(id, "/reject"), nil, nil)
}

// Hangup ends a call (a ringing incoming one: declines it; an unanswered
// outgoing one: cancels it everywhere).
func (c *Client) Hangup(ctx context.Context, id ID) error {
	return c.Do(ctx, http.MethodPost, callPath(id, "/hangup"), nil, nil)
}

// Mute mutes or unmutes this side of a call.
func (c *Client) Mute(ctx context.Context, id ID, muted bool) (*Call, error) {
	var a CallAnswer
	return a.Call, c.Do(ctx, http.MethodPost, callPath(id, "/mute"), MuteRequest{Muted: muted}, &a)
}
