package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Calls in the browser (docs/agent-api.md, Calls in the browser): the web
// app's page is the media endpoint (its own WebRTC stack); the agent
// carries the offer and the answer end to end encrypted and checks their
// DTLS fingerprints.

// WebCall is a call whose media runs in a browser page.
type WebCall struct {
	ID         ID     `json:"id"`
	Peer       string `json:"peer"`
	PeerDevice uint32 `json:"peer_device,omitempty"`
	Outgoing   bool   `json:"outgoing,omitempty"`
	// State: dialing, ringing, connecting, active, ended.
	State string `json:"state"`
	// RemoteSDP is the peer's offer (incoming) or answer (outgoing),
	// exactly as it arrived end to end encrypted: the only place the page
	// gets it from.
	RemoteSDP       string `json:"remote_sdp,omitempty"`
	DurationSeconds int64  `json:"duration_seconds,omitempty"`
	// Reason, for ended calls: as Call.Reason, and fingerprint_missing
	// (an SDP without a usable DTLS fingerprint).
	Reason string `json:"reason,omitempty"`
}

// Types of the events of GET /v1/webcalls/events (event: webcall).
const (
	WebCallIncoming = "incoming" // a call rings here: remote_sdp is the offer
	WebCallRinging  = "ringing"  // a callee device rings
	WebCallAnswered = "answered" // the callee answered: remote_sdp is the answer
	WebCallActive   = "active"   // the page reported its media connected and its fingerprints checked out
	WebCallEnded    = "ended"
)

// WebCallEvent is one event of the web call stream.
type WebCallEvent struct {
	Type string   `json:"type"`
	Call *WebCall `json:"call"`
}

// Web call request and answer bodies.
type (
	// WebDialRequest places a call with the page's offer (ICE gathering
	// complete: no trickle).
	WebDialRequest struct {
		User string `json:"user"`
		SDP  string `json:"sdp"`
	}
	// WebAnswerRequest answers a ringing call with the page's answer.
	WebAnswerRequest struct {
		SDP string `json:"sdp"`
	}
	// WebConnectedRequest is what the page's DTLS transport saw once the
	// media connected: the sha-256 fingerprints of the peer's and its own
	// certificates (RTCCertificateStats.fingerprint).
	WebConnectedRequest struct {
		RemoteFingerprint string `json:"remote_fingerprint"`
		LocalFingerprint  string `json:"local_fingerprint"`
	}
	// WebHangupRequest ends a call (a ringing incoming one: declines it);
	// Failed says the page's media connection failed.
	WebHangupRequest struct {
		Failed bool `json:"failed,omitempty"`
	}
	WebCallAnswer struct {
		Call *WebCall `json:"call"`
	}
	// ICEServer is an RTCIceServer.
	ICEServer struct {
		URLs       []string `json:"urls"`
		Username   string   `json:"username,omitempty"`
		Credential string   `json:"credential,omitempty"`
	}
	// WebICEAnswer is the page's RTCConfiguration: the relay's TURN
	// server with short-lived credentials, and whether media must go
	// through it only (iceTransportPolicy "relay").
	WebICEAnswer struct {
		ICEServers []ICEServer `json:"ice_servers"`
		RelayOnly  bool        `json:"relay_only,omitempty"`
	}
)

// WebCallStream is the web call stream (GET /v1/webcalls/events): while
// it is open, the device's incoming calls ring on it.
type WebCallStream struct{ s *Stream }

// WebCallEvents opens the web call stream.
func (c *Client) WebCallEvents(ctx context.Context) (*WebCallStream, error) {
	resp, err := c.request(ctx, http.MethodGet, "/webcalls/events", nil, "")
	if err != nil {
		return nil, err
	}
	return &WebCallStream{s: newStream(resp.Body)}, nil
}

// Next returns the next event; io.EOF when the agent ended the stream.
func (w *WebCallStream) Next() (*WebCallEvent, error) {
	var data []byte
	for w.s.sc.Scan() {
		line := w.s.sc.Bytes()
		switch {
		case len(line) == 0:
			if data == nil {
				continue
			}
			var e WebCallEvent
			if err := json.Unmarshal(data, &e); err != nil {
				return nil, fmt.Errorf("agent: bad event: %w", err)
			}
			return &e, nil
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
	if err := w.s.sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.EOF
}

// Close ends the stream (the last one closed: the web calls end).
func (w *WebCallStream) Close() error { return w.s.Close() }

func webCallPath(id ID, rest string) string {
	b, _ := id.MarshalText()
	return "/webcalls/" + string(b) + rest
}

// WebDial places a call with a page's offer.
func (c *Client) WebDial(ctx context.Context, r WebDialRequest) (*WebCall, error) {
	var a WebCallAnswer
	return a.Call, c.Do(ctx, http.MethodPost, "/webcalls", r, &a)
}

// WebAnswer answers a ringing call with a page's answer.
func (c *Client) WebAnswer(ctx context.Context, id ID, sdp string) (*WebCall, error) {
	var a WebCallAnswer
	return a.Call, c.Do(ctx, http.MethodPost, webCallPath(id, "/answer"), WebAnswerRequest{SDP: sdp}, &a)
}

// WebConnected reports the fingerprints a page's DTLS transport saw.
func (c *Client) WebConnected(ctx context.Context, id ID, r WebConnectedRequest) (*WebCall, error) {
	var a WebCallAnswer
	return a.Call, c.Do(ctx, http.MethodPost, webCallPath(id, "/connected"), r, &a)
}

// WebHangup ends a web call.
func (c *Client) WebHangup(ctx context.Context, id ID, failed bool) error {
	return c.Do(ctx, http.MethodPost, webCallPath(id, "/hangup"), WebHangupRequest{Failed: failed}, nil)
}

// WebICE returns a page's RTCConfiguration.
func (c *Client) WebICE(ctx context.Context) (*WebICEAnswer, error) {
	var a WebICEAnswer
	return &a, c.Do(ctx, http.MethodGet, "/webcalls/ice", nil, &a)
}
