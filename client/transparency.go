package client

import (
	"context"
	"errors"
	"time"

	"sotto/client/keylog"
	"sotto/client/transport"
	"sotto/transparency"
)

// Key transparency (DESIGN §5, §7) lives in package keylog: the pinned log
// and witness keys, the newest verified and witnessed heads, the audit of
// the account's own name, gossip, bindings and alarms. This file wires a
// keylog.Log into the client: its configuration, the client's API over it,
// and the audit loop of a connection. The receive path's check of first
// and changed keys is in transparency_first.go and transparency_change.go.

// auditInterval is how often the receive loop audits the key log.
const auditInterval = 15 * time.Minute

// EventTransparencyAlarm reports a key transparency alarm: Event.Err is the
// *TransparencyAlarm, Event.User the user it concerns.
const EventTransparencyAlarm EventKind = 200 // 100-199: organization events (orgctl.go)

// TransparencyAlarm is evidence that the relay misbehaved (keylog.Alarm).
type TransparencyAlarm = keylog.Alarm

// AlarmKind says what a key transparency alarm found.
type AlarmKind = keylog.AlarmKind

// Kinds of alarms (see package keylog).
const (
	AlarmFork              = keylog.AlarmFork
	AlarmForeignKey        = keylog.AlarmForeignKey
	AlarmUnprovenKey       = keylog.AlarmUnprovenKey
	AlarmBadLog            = keylog.AlarmBadLog
	AlarmLogKeyMismatch    = keylog.AlarmLogKeyMismatch
	AlarmUnloggedSender    = keylog.AlarmUnloggedSender
	AlarmUnloggedKeyChange = keylog.AlarmUnloggedKeyChange
	AlarmStaleBinding      = keylog.AlarmStaleBinding
	AlarmUnwitnessed       = keylog.AlarmUnwitnessed
	AlarmBadCosignature    = keylog.AlarmBadCosignature
)

// Errors of key transparency (see package keylog).
var (
	ErrKeyNotInLog       = keylog.ErrKeyNotInLog
	ErrFork              = keylog.ErrFork
	ErrSenderNotInLog    = keylog.ErrSenderNotInLog
	ErrKeyChangeNotInLog = keylog.ErrKeyChangeNotInLog
)

// DefaultWitnessBound is how long a head may stay unwitnessed.
const DefaultWitnessBound = keylog.DefaultWitnessBound

// newKeyLog makes the client's keylog.Log.
func (c *Client) newKeyLog() *keylog.Log {
	return keylog.New(keylog.Config{
		Store:       c.db,
		User:        c.acct.Username,
		IdentityKey: c.IdentityKey,
		Certify: func(ctx context.Context, db keylog.KV, user string, key, cert []byte) error {
			return c.checkCertified(ctx, db, user, key, cert) // orgroots.go
		},
		WitnessBound: c.witnessBound,
		OnAlarm: func(a *keylog.Alarm) {
			c.emit(Event{Kind: EventTransparencyAlarm, User: a.User, Err: a})
		},
		Now:    c.opts.Now,
		Logger: c.log,
	})
}

// alarm reports a at once and queues it for the store (keylog.Log.Raise).
func (c *Client) alarm(a *TransparencyAlarm) *TransparencyAlarm { return c.keylog.Raise(a) }

// flushAlarms stores queued alarms and proven bindings; it must run
// outside a store transaction.
func (c *Client) flushAlarms(ctx context.Context) { c.keylog.Flush(ctx) }

// LogPublicKey returns the pinned key of the relay's key transparency log
// (nil: none), for out-of-band comparison.
func (c *Client) LogPublicKey(ctx context.Context) ([]byte, error) { return keylog.LogKey(ctx, c.db) }

// TransparencyHead returns the newest verified signed head (nil: none yet).
func (c *Client) TransparencyHead(ctx context.Context) (*transparency.SignedHead, error) {
	return c.keylog.Head(ctx)
}

// TransparencyAlarms returns the alarms kept, oldest first: the first
// keylog.AlarmsKeepFirst ever raised and the newest ones (see
// TransparencyAlarmsDropped).
func (c *Client) TransparencyAlarms(ctx context.Context) ([]TransparencyAlarm, error) {
	return c.keylog.Alarms(ctx)
}

// TransparencyAlarmsDropped returns how many alarms were dropped to bound
// the storage alarms take.
func (c *Client) TransparencyAlarmsDropped(ctx context.Context) (uint64, error) {
	return c.keylog.AlarmsDropped(ctx)
}

// WitnessPublicKey returns the pinned key of the org's key log witness
// (nil: none pinned, and a split view is not detectable).
func (c *Client) WitnessPublicKey(ctx context.Context) ([]byte, error) {
	return keylog.WitnessKey(ctx, c.db)
}

// WitnessedHead returns the largest head this device accepted with a valid
// cosignature of the pinned witness (nil: none yet).
func (c *Client) WitnessedHead(ctx context.Context) (*transparency.SignedHead, error) {
	return c.keylog.WitnessedHead(ctx)
}

// witnessBound is the org policy's bound on unwitnessed heads, else the
// client's (Options.WitnessBound).
func (c *Client) witnessBound(ctx context.Context) time.Duration {
	if p, err := c.OrgPolicy(ctx); err == nil && p.GetWitnessBoundSeconds() > 0 {
		return time.Duration(p.GetWitnessBoundSeconds()) * time.Second
	}
	return c.opts.WitnessBound
}

// relay returns the connection as the keylog's Relay.
func (c *Client) relay() (keylog.Relay, error) {
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// AuditKeyLog reads the key log leaves appended since the last audit,
// alarms on any binding of this account's username to another identity
// key, and checks that the leaves hash to the relay's signed head. It
// returns how many leaves it read.
func (c *Client) AuditKeyLog(ctx context.Context) (int, error) {
	conn, err := c.connection()
	if err != nil {
		return 0, err
	}
	return c.auditAndReport(ctx, conn)
}

// auditAndReport audits, then tells the account's other devices what the
// audit found against this account (ownalarm.go), outside the audit's lock.
func (c *Client) auditAndReport(ctx context.Context, conn *transport.Conn) (int, error) {
	n, err := c.keylog.Audit(ctx, conn)
	c.reportToSiblings(ctx)
	return n, err
}

// startAudit audits the key log on every connection, and every
// auditInterval after while the receive loop runs. A short connection (one
// send) may end before its audit does; what it read is kept, and the next
// connection goes on from there.
func (c *Client) startAudit(ctx context.Context, conn *transport.Conn, receive bool) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(auditInterval)
		defer t.Stop()
		for {
			if _, err := c.auditAndReport(ctx, conn); err != nil && ctx.Err() == nil {
				c.log.Warn("key log audit", "err", err)
			}
			if !receive {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// refusesSender reports which errors of a served key's check, besides the
// keylog's own, refuse a first or changed key's message: an identity key
// the organization did not certify.
func refusesSender(err error) bool { return errors.Is(err, ErrNotCertified) }
