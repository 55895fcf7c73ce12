package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"sotto/client/conversation"
	"sotto/client/store"
)

const tblSettings = "settings"

var settingsKey = []byte("prefs")

// Settings are the user's messaging preferences, kept on this device.
type Settings struct {
	// ReadReceipts: when off, this device sends no read receipts and does
	// not show the ones others send (as Signal). On by default.
	ReadReceipts bool
	// Typing: when on, typing indicators are sent and shown. Off by
	// default: they leak when someone is active.
	Typing bool
	// SealedFallback: when on, a message the relay refuses to deliver
	// sealed goes out naming its sender (counted: SealedDowngrades); when
	// off (the default) it is not sent (ErrSealedRefused). An organization
	// policy with sealed_only forbids the fallback whatever this says.
	SealedFallback bool
	// GroupReceipts: when on, this device sends delivery receipts (one
	// per group per sync) and read receipts in group chats. Off by
	// default: in a large group every member's receipts reach everyone.
	GroupReceipts bool
}

// settingsRecord is stored so that its zero value means the defaults
// (it travels in history exports: client/conversation).
type settingsRecord = conversation.SettingsRecord

func loadSettings(ctx context.Context, db kv) (Settings, error) {
	var r settingsRecord
	b, err := db.Get(ctx, tblSettings, settingsKey)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Settings{}, err
	}
	if err == nil {
		if err := json.Unmarshal(b, &r); err != nil {
			return Settings{}, fmt.Errorf("client: settings: %w", err)
		}
	}
	return Settings{ReadReceipts: !r.NoReadReceipts, Typing: r.Typing, SealedFallback: r.SealedFallback, GroupReceipts: r.GroupReceipts}, nil
}

// Settings returns the current settings.
func (c *Client) Settings(ctx context.Context) (Settings, error) { return loadSettings(ctx, c.db) }

// SetSettings stores s.
func (c *Client) SetSettings(ctx context.Context, s Settings) error {
	b, err := json.Marshal(settingsRecord{NoReadReceipts: !s.ReadReceipts, Typing: s.Typing, SealedFallback: s.SealedFallback, GroupReceipts: s.GroupReceipts})
	if err != nil {
		return fmt.Errorf("client: settings: %w", err)
	}
	return c.db.Put(ctx, tblSettings, settingsKey, b)
}

// showReadReceipts reports whether others' read receipts are shown.
func (c *Client) showReadReceipts(ctx context.Context, db kv) bool {
	s, err := loadSettings(ctx, db)
	if err != nil {
		c.log.Warn("settings unreadable", "err", err)
		return true
	}
	return s.ReadReceipts
}
