package api

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
