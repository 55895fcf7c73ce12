// Package call makes end-to-end encrypted 1:1 voice calls between Sotto
// devices over WebRTC (pion/webrtc).
//
// Signalling (offer, answer, ringing, busy, reject, hang-up) travels as
// content.CallSignal inside the Signal sessions, so the DTLS certificate
// fingerprints in the SDP are authenticated by the ratchet: a relay that
// rewrites them cannot sit in the middle, the DTLS handshake fails and the
// call ends with ErrFingerprintMismatch. Media is DTLS-SRTP, directly
// between the devices or through the relay's TURN server: only when the
// direct path failed (fallback.go: a direct call allocates nothing on
// TURN), or from the start with Options.RelayOnly so that peers never
// learn each other's address.
//
// Audio is Opus at 48 kHz mono in builds with the opus tag (libopus
// through cgo: Debian libopus-dev and pkg-config; build with
// -tags 'opus nolibopusfile'), falling back to 8 kHz G.711 μ-law (PCMU)
// when the peer offers only that; builds without the tag (and without
// cgo) speak PCMU only. Sources and sinks are WAV files (16-bit PCM mono,
// 8 kHz or 48 kHz, resampled to the codec's rate; recorded at the codec's
// rate) or anything implementing Source and Sink.
//
// Group calls (an SFU in the relay forwarding SFrame-encrypted media keyed
// from the MLS epoch) are not built yet: CallSignal.media and the Codec
// and Source/Sink interfaces are where they would plug in.
package call
