package relay

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"

	"sotto/wire"
)

// One send path for named and sealed sends. A SendMessage names its
// sender (the connection's device); a SealedSend names none and is
// authorized by the recipient's access key instead (sealed.go). Both are
// checked by prepareSend, stored by the same mailbox call and answered
// alike: on the read goroutine with the asynchronous mailbox when what
// they need is cached (fastpath.go), else on the general path.

// sendRequest is a SendMessage or a SealedSend.
type sendRequest struct {
	sealed    bool
	recipient string
	messages  []*wire.OutgoingMessage
	messageID []byte
	accessKey []byte // sealed only
}

func namedSend(r *wire.SendMessageRequest) *sendRequest {
	return &sendRequest{recipient: r.Recipient, messages: r.Messages, messageID: r.MessageId}
}

func sealedSend(r *wire.SealedSendRequest) *sendRequest {
	return &sendRequest{sealed: true, recipient: r.Recipient, messages: r.Messages, messageID: r.MessageId, accessKey: r.AccessKey}
}

// response is the send's answer.
func (r *sendRequest) response(resp *wire.Response, res AppendResult) {
	m := &wire.SendMessageResponse{ServerTimestampMs: res.Timestamp.UnixMilli(), Duplicate: res.Duplicate}
	if r.sealed {
		resp.Body = &wire.Response_SealedSend{SealedSend: m}
		return
	}
	resp.Body = &wire.Response_SendMessage{SendMessage: m}
}

// appendResponse appends the encoded Frame answering request id.
func (r *sendRequest) appendResponse(b []byte, id uint64, res AppendResult) []byte {
	m := &wire.SendMessageResponse{ServerTimestampMs: res.Timestamp.UnixMilli(), Duplicate: res.Duplicate}
	if r.sealed {
		return wire.AppendSealedSendResponse(b, id, m)
	}
	return wire.AppendSendMessageResponse(b, id, m)
}

// errSealedAuth is the one answer for an unknown recipient, a recipient
// without an access key and a wrong access key, so that a sealed send does
// not tell them apart.
var errSealedAuth = fmt.Errorf("%w: access key refused", ErrUnauthenticated)

// prepareSend checks r and builds the Send to store. With wait false it
// uses only what is cached and returns errCacheMiss (having changed
// nothing, no limit charged) when something is not.
func (c *conn) prepareSend(r *sendRequest, wait bool) (*Send, error) {
	// What the checks need, looked up first so that a cache miss has no
	// side effect. A sealed send reads the member access document on
	// every send, before the recipient, so that it adds nothing to what
	// timing tells about the recipient.
	var member *wire.MemberAccess
	if r.sealed && !c.authed && c.s.sealed.keys != nil {
		var err error
		if member, err = c.s.member.get(c.s.ctx, wait); err != nil {
			return nil, err
		}
	}
	var (
		e    dirEntry
		lerr error
	)
	if u, err := NormalizeUsername(r.recipient); err != nil {
		lerr = ErrNotFound
	} else if wait {
		e, lerr = c.s.cache.getEntry(c.ctx, u)
	} else if e, lerr = c.s.cache.peekEntry(c.s.ctx, u); errors.Is(lerr, errCacheMiss) {
		return nil, lerr
	}
	if lerr == nil && e.acct.Revoked {
		lerr = ErrNotFound
	}
	if r.sealed {
		return c.checkSealed(r, member, e, lerr)
	}
	return c.checkNamed(r, e, lerr)
}

// checkNamed checks a SendMessage from the connection's device.
func (c *conn) checkNamed(r *sendRequest, e dirEntry, lerr error) (*Send, error) {
	now := c.s.cfg.Now()
	if !now.Before(c.acct.Expires) {
		return nil, ErrExpired
	}
	if len(r.messageID) == 0 || len(r.messageID) > maxMessageID {
		return nil, badRequest("message id must be 1 to %d bytes", maxMessageID)
	}
	if len(r.messages) > maxRecipients {
		return nil, badRequest("too many recipient devices")
	}
	if lerr != nil {
		return nil, lerr
	}
	if err := staleCheck(e.acct, e.devices, r.messages, c.dev); err != nil {
		return nil, err
	}
	if len(r.messages) == 0 {
		return nil, badRequest("no recipient devices")
	}
	return c.newSend(r, e.acct, c.dev, c.username), nil
}

// checkSealed checks a SealedSend. It is served only on a connection that
// never authenticated.
func (c *conn) checkSealed(r *sendRequest, member *wire.MemberAccess, e dirEntry, lerr error) (*Send, error) {
	if c.authed {
		return nil, badRequest("sealed sends go over a connection that never authenticated")
	}
	ss := c.s.sealed
	if ss.keys == nil {
		return nil, fmt.Errorf("%w: this relay's store keeps no access keys", ErrUnavailable)
	}
	if err := ss.ipRate.allow(c.ip, c.s.cfg.Now()); err != nil {
		return nil, err
	}
	if len(r.messageID) == 0 || len(r.messageID) > maxMessageID {
		return nil, badRequest("message id must be 1 to %d bytes", maxMessageID)
	}
	if len(r.messages) == 0 || len(r.messages) > maxRecipients {
		return nil, badRequest("1 to %d recipient devices", maxRecipients)
	}
	if len(r.accessKey) > maxAccessKey {
		return nil, badRequest("access key too long")
	}
	if errors.Is(lerr, ErrNotFound) {
		subtle.ConstantTimeCompare(r.accessKey, make([]byte, wire.AccessKeySize))
		return nil, errSealedAuth
	}
	if lerr != nil {
		return nil, lerr
	}
	// The recipient's own key, or the organization's member key: both
	// compared every time, so that timing does not tell which matched.
	var memberKey []byte
	if member != nil {
		memberKey = member.AccessKey
	}
	stored, refuse, _ := splitAccessKey(e.accessKey)
	own := accessKeyMatches(stored, r.accessKey)
	org := accessKeyMatches(memberKey, r.accessKey) & (1 ^ refuse)
	if own|org != 1 {
		return nil, errSealedAuth
	}
	for _, m := range r.messages {
		if m.Type != wire.EnvelopeTypeSealed {
			return nil, badRequest("a sealed send carries only sealed messages (type %d)", wire.EnvelopeTypeSealed)
		}
	}
	if err := staleCheck(e.acct, e.devices, r.messages, DeviceAddr{}); err != nil {
		return nil, err
	}
	return c.newSend(r, e.acct, DeviceAddr{}, ""), nil
}

// newSend builds the Send of a checked request: one envelope per
// recipient device, naming sender (none for a sealed send).
func (c *conn) newSend(r *sendRequest, to Account, sender DeviceAddr, senderName string) *Send {
	now := c.s.cfg.Now()
	send := &Send{Sender: sender, MessageID: r.messageID, Timestamp: now, Envelopes: make([]Envelope, len(r.messages))}
	for i, m := range r.messages {
		e := &send.Envelopes[i]
		rand.Read(e.ID[8:])
		e.Recipient = DeviceAddr{Account: to.ID, Device: m.DeviceId}
		e.Sender, e.SenderDevice = senderName, sender.Device
		e.Timestamp, e.Type, e.Content, e.MessageID = now, m.Type, m.Content, r.messageID
	}
	return send
}

// staleCheck is the device-list check of every send: one ciphertext for
// each active device of the recipient account but the sender's own
// (self; zero for a sealed send), with its registration id.
func staleCheck(acct Account, devs []Device, msgs []*wire.OutgoingMessage, self DeviceAddr) error {
	want := make(map[uint32]uint32, len(devs))
	var current []Device
	for _, d := range devs {
		if d.Addr == self {
			continue // never to oneself
		}
		want[d.Addr.Device] = d.RegistrationID
		current = append(current, d)
	}
	stale := &StaleError{Username: acct.Username, Current: current}
	seen := make(map[uint32]bool, len(msgs))
	for _, m := range msgs {
		if seen[m.DeviceId] {
			return badRequest("duplicate device id %d", m.DeviceId)
		}
		seen[m.DeviceId] = true
		reg, ok := want[m.DeviceId]
		switch {
		case !ok:
			stale.Extra = append(stale.Extra, m.DeviceId)
		case reg != m.RegistrationId:
			stale.Mismatched = append(stale.Mismatched, m.DeviceId)
		}
	}
	for id := range want {
		if !seen[id] {
			stale.Missing = append(stale.Missing, id)
		}
	}
	if len(stale.Missing)+len(stale.Extra)+len(stale.Mismatched) > 0 {
		slices.Sort(stale.Missing)
		slices.Sort(stale.Extra)
		slices.Sort(stale.Mismatched)
		return stale
	}
	return nil
}

// sendNow is the general path of both sends: checked with lookups that
// may load, stored with the mailbox's blocking Append.
func (c *conn) sendNow(r *sendRequest, resp *wire.Response) error {
	c.s.metrics.generalSends.Add(1)
	send, err := c.prepareSend(r, true)
	if err != nil {
		return err
	}
	res, err := c.s.mb.Append(c.ctx, send)
	if err != nil {
		return err
	}
	c.stored(r, send, res)
	r.response(resp, res)
	return nil
}

// stored counts a stored send and wakes its recipients.
func (c *conn) stored(r *sendRequest, send *Send, res AppendResult) {
	c.s.metrics.sends.Add(1)
	if r.sealed {
		c.sealedSent()
	}
	if !res.Duplicate {
		c.s.metrics.stored.Add(uint64(len(send.Envelopes)))
		for i := range send.Envelopes {
			e := send.Envelopes[i : i+1]
			if err := c.s.bus.Notify(c.s.ctx, e[0].Recipient, e); err != nil {
				c.s.log.Warn("notifying recipient", "device", e[0].Recipient.String(), "err", err)
			}
		}
	}
}
