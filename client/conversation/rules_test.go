package conversation

import (
	"testing"
	"time"
)

// TestReactNewestWins: each user has one reaction, the newest by its
// author's clock; an older or repeated one changes nothing.
func TestReactNewestWins(t *testing.T) {
	t.Parallel()
	t0 := time.UnixMilli(1_700_000_000_000)
	m := &Message{ID: msgID(1)}
	if !m.React("bob", "👍", false, t0) || m.React("bob", "👍", false, t0) {
		t.Fatal("first reaction not applied, or its redelivery applied again")
	}
	if !m.React("bob", "🎉", false, t0.Add(time.Second)) || m.React("bob", "😢", false, t0) {
		t.Fatal("newest reaction does not win")
	}
	if m.React("carol", "", true, t0) {
		t.Fatal("withdrawing a reaction never made changed the message")
	}
	if len(m.Reactions) != 1 || m.Reactions[0].Emoji != "🎉" {
		t.Fatalf("reactions %+v", m.Reactions)
	}
	if !m.React("bob", "🎉", true, t0.Add(2*time.Second)) || len(m.Reactions) != 0 {
		t.Fatalf("withdrawal: %+v", m.Reactions)
	}
}

// TestEditKeepsVersionsInOrder: versions are ordered by their authors'
// clocks whatever order they arrive in, the newest is shown, and a
// redelivered edit or an edit of a deleted message changes nothing.
func TestEditKeepsVersionsInOrder(t *testing.T) {
	t.Parallel()
	t0 := time.UnixMilli(1_700_000_000_000)
	m := &Message{ID: msgID(1), Text: "v0", SentAt: t0}
	if !m.Edit(msgID(3), "v2", t0.Add(2*time.Second)) || !m.Edit(msgID(2), "v1", t0.Add(time.Second)) {
		t.Fatal("edits not applied")
	}
	if m.Edit(msgID(3), "v2", t0.Add(2*time.Second)) {
		t.Fatal("a redelivered edit applied again")
	}
	if m.Text != "v2" || len(m.Versions) != 3 || m.Versions[0].Text != "v0" || m.Versions[1].Text != "v1" || !m.Edited() {
		t.Fatalf("text %q versions %+v", m.Text, m.Versions)
	}
	m.Delete()
	if m.Edit(msgID(4), "v3", t0.Add(3*time.Second)) || m.Text != "" || m.Versions != nil || !m.Deleted {
		t.Fatalf("deleted message edited: %+v", m)
	}
	timer := &Message{ID: msgID(5), Kind: KindTimer}
	if timer.Edit(msgID(6), "x", t0) {
		t.Fatal("a timer change edited")
	}
}

// TestDeleteWindowByRelayTime: a deletion counts only within DeleteWindow
// of the message, both by the relay's clock.
func TestDeleteWindowByRelayTime(t *testing.T) {
	t.Parallel()
	t0 := time.UnixMilli(1_700_000_000_000)
	m := &Message{ID: msgID(1), ServerTime: t0}
	if !m.InDeleteWindow(t0.Add(DeleteWindow)) || m.InDeleteWindow(t0.Add(DeleteWindow+time.Millisecond)) {
		t.Fatal("the delete window is not 24 hours of relay time")
	}
}
