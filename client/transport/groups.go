package transport

import (
	"context"
	"sync"

	"sotto/wire"
)

// GroupWaiting signals that the relay has new messages for a group this
// device is in (coalesced: one signal may stand for many pushes); take
// the ones the pushes carried with GroupPushed, fetch the rest with
// GroupFetch.
func (c *Conn) GroupWaiting() <-chan struct{} { return c.groupWake }

// GroupPushed returns, and forgets, the group messages the relay's
// GroupWaiting pushes carried since the last call, in the order they
// came (each with its prev_seq). ok is false when a push carried none
// (a commit, a large message, a relay that does not push messages) or
// some were dropped (more than maxGroupPushed waited): then fetch. A
// GroupWaiting signal may find nothing new (it is coalesced).
func (c *Conn) GroupPushed() (msgs []*wire.GroupMessage, ok bool) { return c.groupIn.take() }

// maxGroupPushed bounds the pushed group messages a Conn holds for its
// reader.
const maxGroupPushed = 4096

// groupPushes holds pushed group messages until taken.
type groupPushes struct {
	mu    sync.Mutex
	msgs  []*wire.GroupMessage
	fetch bool // a push without messages came, or some were dropped
}

func (g *groupPushes) add(ms []*wire.GroupMessage) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(ms) == 0 || len(g.msgs)+len(ms) > maxGroupPushed {
		g.msgs, g.fetch = nil, true
		return
	}
	g.msgs = append(g.msgs, ms...)
}

func (g *groupPushes) take() ([]*wire.GroupMessage, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms, ok := g.msgs, !g.fetch
	g.msgs, g.fetch = nil, false
	return ms, ok
}

// UploadKeyPackages adds one-time MLS KeyPackages and, if set, replaces
// the last-resort one.
func (c *Conn) UploadKeyPackages(ctx context.Context, oneTime [][]byte, lastResort []byte) error {
	_, err := c.Do(ctx, &wire.Request{Body: &wire.Request_UploadKeyPackages{UploadKeyPackages: &wire.UploadKeyPackagesRequest{
		KeyPackages: oneTime, LastResort: lastResort}}})
	return err
}

// KeyPackageCount reports this device's KeyPackages left on the relay.
func (c *Conn) KeyPackageCount(ctx context.Context) (*wire.KeyPackageCountResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_KeyPackageCount{KeyPackageCount: &wire.KeyPackageCountRequest{}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetKeyPackageCount())
}

// FetchKeyPackages takes one KeyPackage of every device of username.
func (c *Conn) FetchKeyPackages(ctx context.Context, username string) (*wire.FetchKeyPackagesResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_FetchKeyPackages{FetchKeyPackages: &wire.FetchKeyPackagesRequest{Username: username}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetFetchKeyPackages())
}

// GroupCommit submits a commit; a commit that lost its epoch comes back
// with Accepted false and the winner.
func (c *Conn) GroupCommit(ctx context.Context, req *wire.GroupCommitRequest) (*wire.GroupCommitResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GroupCommit{GroupCommit: req}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetGroupCommit())
}

// GroupSend stores one message for every member device of a group.
func (c *Conn) GroupSend(ctx context.Context, req *wire.GroupSendRequest) (*wire.GroupSendResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GroupSend{GroupSend: req}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetGroupSend())
}

// GroupFetch returns this device's undelivered group messages.
func (c *Conn) GroupFetch(ctx context.Context, limit uint32) (*wire.GroupFetchResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GroupFetch{GroupFetch: &wire.GroupFetchRequest{Limit: limit}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetGroupFetch())
}

// GroupAck moves this device's cursors.
func (c *Conn) GroupAck(ctx context.Context, acks []*wire.GroupAck) error {
	_, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GroupAck{GroupAck: &wire.GroupAckRequest{Acks: acks}}})
	return err
}

// GroupInfo returns a group's current epoch and GroupInfo.
func (c *Conn) GroupInfo(ctx context.Context, groupID []byte) (*wire.GroupInfoResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GroupInfo{GroupInfo: &wire.GroupInfoRequest{GroupId: groupID}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetGroupInfo())
}

// GroupUpload sends one part of a group handshake message too large for
// a frame (relay/groupparts.go) and returns the bytes the relay has.
func (c *Conn) GroupUpload(ctx context.Context, req *wire.GroupUploadRequest) (*wire.GroupUploadResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GroupUpload{GroupUpload: req}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetGroupUpload())
}

// GroupRead reads part of a stored group message (or, seq 0, of a
// group's GroupInfo) left out of an answer for its size.
func (c *Conn) GroupRead(ctx context.Context, req *wire.GroupReadRequest) (*wire.GroupReadResponse, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_GroupRead{GroupRead: req}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetGroupRead())
}
