package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"sotto/client/content"
	"sotto/client/conversation"
	"sotto/client/store"
	"sotto/wire"
)

// CallSignal is one call signalling message received from a peer device.
// The Signal session authenticated its sender.
type CallSignal struct {
	From       string
	FromDevice uint32
	SentAt     time.Time // the sender's clock
	ServerTime time.Time // when the relay accepted it
	// Unverified: the sender's identity key changed and was not accepted.
	Unverified bool
	Signal     *content.CallSignal
}

// CallRecord is what the history keeps about a call.
type CallRecord = conversation.CallRecord

// applyCallSignal hands a call signal to the call manager after commit.
func (c *Client) applyCallSignal(ctx context.Context, tx *store.Tx, env *wire.Envelope, ct *content.Content, s *content.CallSignal, r *received) error {
	if s == nil {
		return nil
	}
	if s.ToDevice != 0 && s.ToDevice != c.acct.DeviceID {
		return nil // for another device of this account
	}
	if !callSignalAllowed(ctx, tx, s) {
		c.log.Info("call refused: the organization's policy forbids calls", "from", env.Sender)
		return nil
	}
	id, err := loadIdentity(ctx, tx, env.Sender)
	if err != nil {
		return err
	}
	r.call = &CallSignal{From: env.Sender, FromDevice: env.SenderDevice, SentAt: time.UnixMilli(ct.SentAtMs),
		ServerTime: time.UnixMilli(env.ServerTimestampMs), Unverified: id != nil && id.Changed, Signal: s}
	return nil
}

// SendCallSignal sends s to user's devices (s.ToDevice picks one; own
// account: the other own devices).
func (c *Client) SendCallSignal(ctx context.Context, user string, s *content.CallSignal) error {
	if !callSignalAllowed(ctx, c.db, s) {
		return fmt.Errorf("client: calls: %w", ErrForbiddenByPolicy)
	}
	id, err := content.NewID(rand.Reader)
	if err != nil {
		return err
	}
	ct := &content.Content{Version: content.Version, Id: id, SentAtMs: c.opts.Now().UnixMilli(),
		Body: &content.Content_CallSignal{CallSignal: s}}
	_, err = c.sendContent(ctx, normalize(user), ct, id)
	return err
}

// TURNCredentials asks the relay for short-lived TURN credentials.
func (c *Client) TURNCredentials(ctx context.Context) (*wire.TurnCredentials, error) {
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	resp, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_TurnCredentials{TurnCredentials: &wire.TurnCredentialsRequest{}}})
	if err != nil {
		return nil, fmt.Errorf("client: turn credentials: %w", err)
	}
	tc := resp.GetTurnCredentials()
	if tc == nil {
		return nil, errors.New("client: turn credentials: empty answer")
	}
	return tc, nil
}

// RecordCall adds a call to the history of the conversation with peer.
func (c *Client) RecordCall(ctx context.Context, peer string, rec CallRecord, at time.Time) (*Message, error) {
	m := &Message{ID: rec.ID, Peer: peer, From: peer, Outgoing: rec.Outgoing, SentAt: at, ServerTime: at,
		Text: callText(rec), Call: &rec}
	if rec.Outgoing {
		m.From, m.FromDevice = c.acct.Username, c.acct.DeviceID
	}
	_, err := appendMessage(ctx, c.db, c.acct.Username, m)
	return m, err
}

func callText(rec CallRecord) string {
	dir := "incoming"
	if rec.Outgoing {
		dir = "outgoing"
	}
	s := fmt.Sprintf("[%s call: %s", dir, rec.Outcome)
	if rec.Duration > 0 {
		s += ", " + rec.Duration.Round(time.Second).String()
	}
	if rec.Reason != "" {
		s += " (" + rec.Reason + ")"
	}
	return s + "]"
}
