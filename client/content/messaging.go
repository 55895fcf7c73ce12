package content

import (
	"crypto/rand"
	"fmt"
	"time"
	"unicode/utf8"
)

// Limits of the messaging kinds.
const (
	// MaxEmojiBytes bounds a reaction's emoji (a grapheme cluster may be
	// several code points).
	MaxEmojiBytes = 64
	// MaxTimerSeconds bounds a disappearing-messages timer (4 weeks, as
	// Signal's longest preset).
	MaxTimerSeconds = 28 * 24 * 3600
)

func newContent(now time.Time) (*Content, error) {
	id, err := NewID(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Content{Version: Version, Id: id, SentAtMs: now.UnixMilli()}, nil
}

// NewReaction reacts with emoji to the message targetID written by
// targetAuthor; remove withdraws the sender's reaction.
func NewReaction(targetAuthor string, targetID []byte, emoji string, remove bool, now time.Time) (*Content, error) {
	c, err := newContent(now)
	if err != nil {
		return nil, err
	}
	c.Body = &Content_Reaction{Reaction: &Reaction{Emoji: emoji, TargetId: targetID, TargetAuthor: targetAuthor, Remove: remove}}
	return c, validate(c, true)
}

// NewEdit replaces the text of the sender's message targetID.
func NewEdit(targetID []byte, text string, now time.Time) (*Content, error) {
	c, err := newContent(now)
	if err != nil {
		return nil, err
	}
	c.Body = &Content_Edit{Edit: &Edit{TargetId: targetID, Text: text}}
	return c, validate(c, true)
}

// NewDelete deletes the sender's message targetID for everyone.
func NewDelete(targetID []byte, now time.Time) (*Content, error) {
	c, err := newContent(now)
	if err != nil {
		return nil, err
	}
	c.Body = &Content_Delete{Delete: &Delete{TargetId: targetID}}
	return c, validate(c, true)
}

// NewTyping says the sender started (or stopped) typing.
func NewTyping(started bool, now time.Time) (*Content, error) {
	c, err := newContent(now)
	if err != nil {
		return nil, err
	}
	c.Body = &Content_Typing{Typing: &Typing{Started: started}}
	return c, nil
}

// NewTimerChange sets the conversation's disappearing-messages timer.
func NewTimerChange(d time.Duration, now time.Time) (*Content, error) {
	c, err := newContent(now)
	if err != nil {
		return nil, err
	}
	c.Body = &Content_TimerChange{TimerChange: &TimerChange{Seconds: uint32(d / time.Second)}}
	return c, validate(c, true)
}

// validateMessaging checks the messaging kinds; ok is false for other kinds.
func validateMessaging(c *Content) (ok bool, err error) {
	switch b := c.Body.(type) {
	case *Content_Text:
		if b.Text != nil && b.Text.ExpireSeconds > MaxTimerSeconds {
			return true, fmt.Errorf("%w: timer must be at most %d seconds", ErrInvalid, MaxTimerSeconds)
		}
		return false, nil
	case *Content_Reaction:
		r := b.Reaction
		if r == nil || len(r.TargetId) != IDSize || r.TargetAuthor == "" {
			return true, fmt.Errorf("%w: reaction needs a target", ErrInvalid)
		}
		if r.Emoji == "" || len(r.Emoji) > MaxEmojiBytes || !utf8.ValidString(r.Emoji) {
			return true, fmt.Errorf("%w: reaction emoji must be 1 to %d bytes of UTF-8", ErrInvalid, MaxEmojiBytes)
		}
	case *Content_Edit:
		if b.Edit == nil || len(b.Edit.TargetId) != IDSize {
			return true, fmt.Errorf("%w: edit needs a target", ErrInvalid)
		}
	case *Content_Delete:
		if b.Delete == nil || len(b.Delete.TargetId) != IDSize {
			return true, fmt.Errorf("%w: delete needs a target", ErrInvalid)
		}
	case *Content_Typing:
		if b.Typing == nil {
			return true, fmt.Errorf("%w: empty typing", ErrInvalid)
		}
	case *Content_TimerChange:
		if b.TimerChange == nil || b.TimerChange.Seconds > MaxTimerSeconds {
			return true, fmt.Errorf("%w: timer must be at most %d seconds", ErrInvalid, MaxTimerSeconds)
		}
	default:
		return false, nil
	}
	return true, nil
}
