package client

import (
	"context"
	"errors"

	"sotto/client/content"
)

// An owner's foreign-key alarm reaches the owner's other devices: the
// device whose audit finds a key log binding of the account's name to
// another identity key (keylog.Log.Audit) sends the evidence, end to end
// encrypted, to its siblings (DeviceOrder FOREIGN_KEY_ALARM), which check
// it against their own pinned log key and keep it as their own alarm
// (keylog.Log.NoteSiblingAlarm). A phone that never audits still learns
// that someone was shown a key in its owner's name.

// reportToSiblings sends the pending findings to the account's other
// devices. A send that fails is logged; the next audit that finds the
// same leaf does not find it again (the audit moved past it), so the
// finding is kept for the next try.
func (c *Client) reportToSiblings(ctx context.Context) {
	todo := c.keylog.TakeSiblingAlarms()
	for i, a := range todo {
		ct, err := content.NewForeignKeyAlarm(a.Leaf, a.Index, a.Head, c.opts.Now())
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
			c.keylog.ReturnSiblingAlarms(todo[i:])
			return
		}
	}
}

// noteSiblingAlarm checks an own device's report and keeps it as an alarm.
func (c *Client) noteSiblingAlarm(ctx context.Context, from uint32, o *content.DeviceOrder) {
	if err := c.keylog.NoteSiblingAlarm(ctx, from, o.AlarmLeaf, o.AlarmLeafIndex, o.AlarmHead); err != nil {
		c.log.Warn("own device's foreign-key alarm not kept", "device", from, "err", err)
	}
}
