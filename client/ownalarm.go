package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"sotto/client/content"
	"sotto/transparency"
)

// An owner's foreign-key alarm reaches the owner's other devices: the
// device whose audit finds a key log binding of the account's name to
// another identity key sends the evidence, end to end encrypted, to its
// siblings (DeviceOrder FOREIGN_KEY_ALARM), which check it against their
// own pinned log key and keep it as their own alarm. A phone that never
// audits still learns that someone was shown a key in its owner's name.

// siblingAlarm is a foreign-key finding to report.
type siblingAlarm struct {
	leaf  []byte
	index uint64
	head  []byte
}

// reportToSiblings sends the pending findings to the account's other
// devices. A send that fails is logged; the next audit that finds the
// same leaf does not find it again (the audit moved past it), so the
// finding is kept for the next try.
func (c *Client) reportToSiblings(ctx context.Context) {
	c.kt.mu.Lock()
	todo := c.kt.toSiblings
	c.kt.toSiblings = nil
	c.kt.mu.Unlock()
	for i, a := range todo {
		ct, err := content.NewForeignKeyAlarm(a.leaf, a.index, a.head, c.opts.Now())
		if err == nil {
			_, err = c.sendContent(ctx, c.acct.Username, ct, ct.Id)
		}
		if errors.Is(err, ErrNoDevices) {
			continue // no other device to tell
		}
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("foreign-key alarm not reported to the other devices", "err", err)
			}
			c.kt.mu.Lock()
			c.kt.toSiblings = append(todo[i:], c.kt.toSiblings...)
			c.kt.mu.Unlock()
			return
		}
	}
}

// noteSiblingAlarm checks an own device's report and keeps it as an alarm.
func (c *Client) noteSiblingAlarm(ctx context.Context, from uint32, o *content.DeviceOrder) {
	pub, err := logKey(ctx, c.db)
	if err != nil || pub == nil {
		return
	}
	head, err := transparency.VerifyHead(pub, o.AlarmHead)
	if err != nil {
		c.log.Warn("an own device reported a foreign-key alarm under a head the pinned log key did not sign", "device", from)
		return
	}
	b, err := transparency.DecodeBinding(o.AlarmLeaf)
	if err != nil || b.Username != c.acct.Username || bytes.Equal(b.IdentityKey, c.IdentityKey()) || o.AlarmLeafIndex >= head.Size {
		c.log.Warn("an own device reported a foreign-key alarm that does not hold", "device", from)
		return
	}
	c.alarm(&TransparencyAlarm{Kind: AlarmForeignKey, User: c.acct.Username, Leaf: o.AlarmLeaf, LeafIndex: o.AlarmLeafIndex, HeadA: o.AlarmHead,
		Detail: fmt.Sprintf("your device %d found that the key log binds your username %q to an identity key that is not yours (leaf %d): someone can be shown a key that is not yours", from, b.Username, o.AlarmLeafIndex)})
	c.flushAlarms(ctx)
}
