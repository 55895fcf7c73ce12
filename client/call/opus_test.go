//go:build opus

package call

import (
	"testing"
)

// The Opus tests run with -tags opus (libopus-dev and pkg-config
// installed). Opus is lossy, but at 48 kHz mono, 20 ms frames and libopus's
// VoIP defaults the two tones survive with the same margin as over G.711:
// each wanted tone at least 20 dB above the other side's tones and a
// 3100 Hz control (checkHeard), and the tone lasting the 1.5 s sent
// within 200 ms.

func TestCallOpusAudioBothWays(t *testing.T) {
	r := startRelay(t)
	alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{})
	bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), Options{})
	caller, callee := talk(t, alice, bob, true)
	for _, c := range []*Call{caller, callee} {
		if got := c.Codec(); got != mimeOpus {
			t.Errorf("%s sent %s, want Opus", c.Peer, got)
		}
	}
	for _, d := range []*device{alice, bob} {
		if got := d.rec.Rate(); got != 48000 {
			t.Errorf("%s received audio at %d Hz, want 48000", d.c.Username(), got)
		}
	}
	checkHeard(t, "bob", heard(bob.rec), aliceFreqs, bobFreqs)
	checkHeard(t, "alice", heard(alice.rec), bobFreqs, aliceFreqs)
}

// A callee without Opus (as a build without the tag) answers with PCMU
// only: the Opus caller falls back, and both hear each other at 8 kHz.
// The reverse (a PCMU-only caller) gets a PCMU answer.
func TestCallOpusFallsBackToPCMU(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		callerPCMU, calleePCMU bool
	}{
		{"callee without Opus", false, true},
		{"caller without Opus", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := startRelay(t)
			alice := r.enroll(t, "alice", tone(toneLen, aliceFreqs...), Options{PCMUOnly: tc.callerPCMU})
			bob := r.enroll(t, "bob", tone(toneLen, bobFreqs...), Options{PCMUOnly: tc.calleePCMU})
			caller, callee := talk(t, alice, bob, false)
			for _, c := range []*Call{caller, callee} {
				if got := c.Codec(); got != mimePCMU {
					t.Errorf("%s sent %s, want PCMU", c.Peer, got)
				}
			}
			for _, d := range []*device{alice, bob} {
				if got := d.rec.Rate(); got != 8000 {
					t.Errorf("%s received audio at %d Hz, want 8000", d.c.Username(), got)
				}
			}
			checkHeard(t, "bob", heard(bob.rec), aliceFreqs, bobFreqs)
			checkHeard(t, "alice", heard(alice.rec), bobFreqs, aliceFreqs)
		})
	}
}
