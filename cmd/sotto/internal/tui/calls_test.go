package tui

import (
	"context"
	"strings"
	"testing"
)

// The ring line names the caller with hostile text neutralized, and only
// a ringing incoming call takes the answer and decline keys.
func TestRingLine(t *testing.T) {
	m := &Model{o: Options{Calls: nil}}
	if l := m.callLine(); l != "" {
		t.Errorf("ring line without a call: %q", l)
	}
	m.onCall(CallMsg{ID: []byte{1}, Peer: "mal\u202elory\x1b[2J", State: "ringing"})
	l := m.infoLine()
	if !strings.Contains(l, "incoming call from") || !strings.Contains(l, "ctrl+y answer") {
		t.Errorf("ring line: %q", l)
	}
	if rawHostile.MatchString(l) {
		t.Errorf("raw hostile character in the ring line: %q", l)
	}
	if _, ok := m.callKey("ctrl+y"); ok {
		t.Error("ctrl+y taken without call control")
	}
	m.o.Calls = noCalls{}
	if _, ok := m.callKey("ctrl+y"); !ok {
		t.Error("ctrl+y not taken while a call rings")
	}
	m.onCall(CallMsg{ID: []byte{1}, Peer: "mallory", State: "active"})
	if _, ok := m.callKey("ctrl+y"); ok {
		t.Error("ctrl+y taken by a call in progress (it belongs to the input)")
	}
	if l := m.callLine(); !strings.Contains(l, "in call with mallory") {
		t.Errorf("call line: %q", l)
	}
}

// noCalls is a CallControl that is never called here.
type noCalls struct{}

func (noCalls) Dial(context.Context, string) error   { return nil }
func (noCalls) Answer(context.Context, []byte) error { return nil }
func (noCalls) Reject(context.Context, []byte) error { return nil }
func (noCalls) Hangup(context.Context, []byte) error { return nil }
