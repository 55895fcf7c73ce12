package conversation

// The rules by which a reaction, an edit or a deletion for everyone
// changes a stored message. Each is idempotent, so a redelivery changes
// nothing; each reports whether the message changed (then the caller
// stores it and reports the update).

import (
	"slices"
	"time"
)

// React applies from's reaction (at: its author's clock) to m: the newest
// reaction of each user wins, and remove withdraws it.
func (m *Message) React(from, emoji string, remove bool, at time.Time) bool {
	i := slices.IndexFunc(m.Reactions, func(x Reaction) bool { return x.From == from })
	if i >= 0 {
		old := m.Reactions[i]
		if old.At.After(at) || (old.At.Equal(at) && old.Emoji == emoji && !remove) {
			return false // older than, or the same as, what is shown
		}
		m.Reactions = slices.Delete(m.Reactions, i, i+1)
	} else if remove {
		return false
	}
	if !remove {
		m.Reactions = append(m.Reactions, Reaction{From: from, Emoji: emoji, At: at})
	}
	return true
}

// Edit adds the version id of m's text (at: its author's clock): versions
// are kept in their authors' time order, and the newest is the text shown.
// A deleted message or a timer change is not edited.
func (m *Message) Edit(id []byte, text string, at time.Time) bool {
	if m.Deleted || m.Kind != "" {
		return false
	}
	if len(m.Versions) == 0 {
		m.Versions = []Version{{ID: m.ID, Text: m.Text, At: m.SentAt}}
	}
	if slices.ContainsFunc(m.Versions, func(v Version) bool { return string(v.ID) == string(id) }) {
		return false
	}
	v := Version{ID: id, Text: text, At: at}
	i, _ := slices.BinarySearchFunc(m.Versions, v, func(a, b Version) int { return a.At.Compare(b.At) })
	for i < len(m.Versions) && !m.Versions[i].At.After(v.At) {
		i++
	}
	m.Versions = slices.Insert(m.Versions, i, v)
	m.Text = m.Versions[len(m.Versions)-1].Text
	return true
}

// InDeleteWindow reports whether a deletion the relay accepted at
// deletedAt falls within DeleteWindow of m's own relay time (the relay's
// clock on both, so a wrong sender clock cannot stretch it).
func (m *Message) InDeleteWindow(deletedAt time.Time) bool {
	return deletedAt.Sub(m.ServerTime) <= DeleteWindow
}

// Delete empties m as deleted for everyone: its text, versions, reactions
// and quote go (its file record is the caller's to drop).
func (m *Message) Delete() {
	m.Deleted, m.Text, m.Versions, m.Reactions, m.QuoteID = true, "", nil, nil, nil
}
