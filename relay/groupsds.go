package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"sotto/wire"
)

// groupStore returns the store's GroupStore, or ErrUnavailable.
func (s *Server) groupStore() (GroupStore, error) {
	if g, ok := s.mb.(GroupStore); ok {
		return g, nil
	}
	if g, ok := s.dir.(GroupStore); ok {
		return g, nil
	}
	return nil, fmt.Errorf("%w: this relay's store keeps no groups", ErrUnavailable)
}

// groupRoutes are the Delivery Service's requests (wire fields 110-139),
// all on authenticated connections.
func groupRoutes() []route {
	return append(groupPartRoutes(), []route{
		{&wire.Request_UploadKeyPackages{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			resp.Body = &wire.Response_UploadKeyPackages{UploadKeyPackages: &wire.UploadKeyPackagesResponse{}}
			return c.uploadKeyPackages(req.GetUploadKeyPackages())
		}},
		{&wire.Request_KeyPackageCount{}, authedOnly, func(c *conn, _ *wire.Request, resp *wire.Response) error {
			r, err := c.keyPackageCount()
			if err == nil {
				resp.Body = &wire.Response_KeyPackageCount{KeyPackageCount: r}
			}
			return err
		}},
		{&wire.Request_FetchKeyPackages{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.fetchKeyPackages(req.GetFetchKeyPackages())
			if err == nil {
				resp.Body = &wire.Response_FetchKeyPackages{FetchKeyPackages: r}
			}
			return err
		}},
		{&wire.Request_GroupCommit{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.groupCommit(req.GetGroupCommit())
			if err == nil {
				resp.Body = &wire.Response_GroupCommit{GroupCommit: r}
			}
			return err
		}},
		{&wire.Request_GroupSend{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.groupSend(req.GetGroupSend())
			if err == nil {
				resp.Body = &wire.Response_GroupSend{GroupSend: r}
			}
			return err
		}},
		{&wire.Request_GroupFetch{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.groupFetch(req.GetGroupFetch())
			if err == nil {
				resp.Body = &wire.Response_GroupFetch{GroupFetch: r}
			}
			return err
		}},
		{&wire.Request_GroupAck{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			resp.Body = &wire.Response_GroupAck{GroupAck: &wire.GroupAckResponse{}}
			return c.groupAck(req.GetGroupAck())
		}},
		{&wire.Request_GroupInfo{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.groupInfo(req.GetGroupInfo())
			if err == nil {
				resp.Body = &wire.Response_GroupInfo{GroupInfo: r}
			}
			return err
		}},
	}...)
}

func (c *conn) uploadKeyPackages(r *wire.UploadKeyPackagesRequest) error {
	gs, err := c.s.groupStore()
	if err != nil {
		return err
	}
	if len(r.KeyPackages) > maxKeyPackageUpload {
		return badRequest("at most %d key packages per upload", maxKeyPackageUpload)
	}
	for _, kp := range append(r.KeyPackages, r.LastResort) {
		if len(kp) > maxKeyPackage {
			return badRequest("key package larger than %d bytes", maxKeyPackage)
		}
	}
	for _, kp := range r.KeyPackages {
		if len(kp) == 0 {
			return badRequest("empty key package")
		}
	}
	if len(r.KeyPackages) == 0 && len(r.LastResort) == 0 {
		return badRequest("no key packages")
	}
	return gs.StoreKeyPackages(c.ctx, c.dev, r.KeyPackages, r.LastResort)
}

func (c *conn) keyPackageCount() (*wire.KeyPackageCountResponse, error) {
	gs, err := c.s.groupStore()
	if err != nil {
		return nil, err
	}
	n, err := gs.CountKeyPackages(c.ctx, c.dev)
	if err != nil {
		return nil, err
	}
	return &wire.KeyPackageCountResponse{OneTime: uint32(n.OneTime), HasLastResort: n.HasLastResort}, nil
}

// fetchKeyPackages takes one KeyPackage of every active device of a user;
// devices with none are left out.
func (c *conn) fetchKeyPackages(r *wire.FetchKeyPackagesRequest) (*wire.FetchKeyPackagesResponse, error) {
	gs, err := c.s.groupStore()
	if err != nil {
		return nil, err
	}
	_, devs, err := c.lookup(r.GetUsername())
	if err != nil {
		return nil, err
	}
	out := &wire.FetchKeyPackagesResponse{}
	for _, d := range devs {
		kp, last, err := gs.TakeKeyPackage(c.ctx, d.Addr)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out.KeyPackages = append(out.KeyPackages, &wire.DeviceKeyPackage{DeviceId: d.Addr.Device, KeyPackage: kp, LastResort: last})
	}
	if len(out.KeyPackages) == 0 {
		return nil, fmt.Errorf("%w: %s has no key packages", ErrNotFound, r.GetUsername())
	}
	return out, nil
}

// groupDevices resolves the devices a commit names; each must be an
// active device of an active account.
func (c *conn) groupDevices(ds []*wire.GroupDevice) ([]DeviceAddr, error) {
	if len(ds) > maxGroupDevices {
		return nil, badRequest("at most %d devices per commit", maxGroupDevices)
	}
	var out []DeviceAddr
	for _, d := range ds {
		_, devs, err := c.lookup(d.GetUsername())
		if err != nil {
			return nil, err
		}
		found := false
		for _, x := range devs {
			if x.Addr.Device == d.GetDeviceId() {
				out = append(out, x.Addr)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("%w: device %d of %s", ErrNotFound, d.GetDeviceId(), d.GetUsername())
		}
	}
	return out, nil
}

// removedDevices resolves the devices a commit removes: they may be
// revoked already (that is often why they go); an unknown account has
// nothing to remove.
func (c *conn) removedDevices(ds []*wire.GroupDevice) ([]DeviceAddr, error) {
	if len(ds) > maxGroupDevices {
		return nil, badRequest("at most %d devices per commit", maxGroupDevices)
	}
	var out []DeviceAddr
	for _, d := range ds {
		name, err := NormalizeUsername(d.GetUsername())
		if err != nil {
			return nil, err
		}
		acct, err := c.s.dir.AccountByName(c.ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, DeviceAddr{Account: acct.ID, Device: d.GetDeviceId()})
	}
	return out, nil
}

func checkGroupID(id []byte) error {
	if len(id) == 0 || len(id) > MaxGroupID {
		return badRequest("group id must be 1 to %d bytes", MaxGroupID)
	}
	return nil
}

func (c *conn) groupCommit(r *wire.GroupCommitRequest) (*wire.GroupCommitResponse, error) {
	gs, err := c.s.groupStore()
	if err != nil {
		return nil, err
	}
	maxMsg, maxInfo := maxGroupMessage, maxGroupInfo
	if len(r.UploadId) > 0 {
		if r, err = c.uploadedCommit(r); err != nil {
			return nil, err
		}
		maxMsg, maxInfo = MaxGroupHandshake, MaxGroupHandshake
	}
	if err := checkGroupID(r.GroupId); err != nil {
		return nil, err
	}
	if len(r.Commit) == 0 || len(r.Commit) > maxMsg || len(r.Welcome) > maxMsg || len(r.GroupInfo) > maxInfo {
		return nil, badRequest("commit, welcome or group info missing or too large")
	}
	added, err := c.groupDevices(r.Added)
	if err != nil {
		return nil, err
	}
	if len(added) > 0 && len(r.Welcome) == 0 {
		return nil, badRequest("devices added without a welcome")
	}
	removed, err := c.removedDevices(r.Removed)
	if err != nil {
		return nil, err
	}
	done := c.s.groups.commit(r.GroupId)
	res, err := gs.CommitGroup(c.ctx, &GroupCommit{GroupID: r.GroupId, Epoch: r.Epoch, Sender: c.dev, Commit: r.Commit,
		Welcome: r.Welcome, Added: added, Removed: removed, GroupInfo: r.GroupInfo, Timestamp: c.s.cfg.Now(), External: r.External})
	done()
	if err != nil {
		return nil, err
	}
	if res.Accepted {
		if c.s.groupInline(gs) {
			c.s.groupPushed(r.GroupId, groupPush{seq: res.Seq, members: res.Members, sender: c.dev})
		} else {
			c.s.groupWake(res.Members, c.dev)
		}
		c.s.groupNotifyNodes(c.ctx, r.GroupId, c.dev, true)
	}
	if len(res.Winner) > GroupInlineMax {
		res.Winner = nil // the loser fetches it (winner_seq)
	}
	return &wire.GroupCommitResponse{Accepted: res.Accepted, Seq: res.Seq, Epoch: res.Epoch, Winner: res.Winner, WinnerSeq: res.WinnerSeq}, nil
}

func (c *conn) groupSend(r *wire.GroupSendRequest) (*wire.GroupSendResponse, error) {
	gs, err := c.s.groupStore()
	if err != nil {
		return nil, err
	}
	if err := checkGroupID(r.GroupId); err != nil {
		return nil, err
	}
	if len(r.MessageId) == 0 || len(r.MessageId) > maxMessageID {
		return nil, badRequest("message id must be 1 to %d bytes", maxMessageID)
	}
	if len(r.Content) == 0 || len(r.Content) > maxGroupMessage {
		return nil, badRequest("group message empty or larger than %d bytes", maxGroupMessage)
	}
	now := c.s.cfg.Now()
	res, err := gs.AppendGroup(c.ctx, &GroupSend{GroupID: r.GroupId, Sender: c.dev, MessageID: r.MessageId, Content: r.Content, Timestamp: now})
	if err != nil {
		return nil, err
	}
	if !res.Duplicate {
		members, err := c.s.groups.members(c.ctx, gs, r.GroupId)
		if err != nil {
			// Stored: the members fetch it when they next connect.
			c.s.log.Warn("group members for the wake-up", "err", err)
		}
		if c.s.groupInline(gs) && err == nil {
			p := groupPush{seq: res.Seq, members: members, sender: c.dev}
			if len(r.Content) <= GroupPushInlineMax {
				p.msg = &wire.GroupMessage{GroupId: r.GroupId, Seq: res.Seq, Kind: wire.GroupMessageKind_GROUP_MESSAGE,
					ServerTimestampMs: now.UnixMilli(), Content: r.Content, PrevSeq: res.Seq - 1}
			}
			c.s.groupPushed(r.GroupId, p)
		} else {
			c.s.groupWake(members, c.dev)
		}
		c.s.groupNotifyNodes(c.ctx, r.GroupId, c.dev, false)
	}
	return &wire.GroupSendResponse{Seq: res.Seq, Duplicate: res.Duplicate}, nil
}

// groupFetchBytes keeps a fetch answer well inside a frame.
const groupFetchBytes = wire.MaxFrameSize / 2

func (c *conn) groupFetch(r *wire.GroupFetchRequest) (*wire.GroupFetchResponse, error) {
	gs, err := c.s.groupStore()
	if err != nil {
		return nil, err
	}
	limit := int(r.GetLimit())
	if limit <= 0 || limit > groupFetchBatch {
		limit = groupFetchBatch
	}
	msgs, err := gs.FetchGroups(c.ctx, c.dev, limit)
	if err != nil {
		return nil, err
	}
	out := &wire.GroupFetchResponse{More: len(msgs) == limit}
	size := 0
	for i := range msgs {
		m := &msgs[i]
		size += len(m.Content) + len(m.GroupID) + 32
		if size > groupFetchBytes && i > 0 {
			out.More = true
			break
		}
		wm := &wire.GroupMessage{GroupId: m.GroupID, Seq: m.Seq, Kind: wire.GroupMessageKind(m.Kind),
			Epoch: m.Epoch, ServerTimestampMs: m.Timestamp.UnixMilli(), Content: m.Content}
		if m.Content == nil && m.Size > 0 {
			wm.Size = m.Size // read in parts (groupparts.go)
		}
		out.Messages = append(out.Messages, wm)
	}
	return out, nil
}

func (c *conn) groupAck(r *wire.GroupAckRequest) error {
	gs, err := c.s.groupStore()
	if err != nil {
		return err
	}
	if len(r.Acks) > maxGroupAcks {
		return badRequest("at most %d acks", maxGroupAcks)
	}
	acks := make([]GroupAck, 0, len(r.Acks))
	for _, a := range r.Acks {
		if err := checkGroupID(a.GroupId); err != nil {
			return err
		}
		acks = append(acks, GroupAck{GroupID: a.GroupId, Seq: a.Seq})
	}
	return gs.AckGroups(c.ctx, c.dev, acks)
}

// groupInfo serves a group's GroupInfo to the devices of an account that
// has a device in the group (a new linked device joining by external
// commit); to anybody else the group does not exist.
func (c *conn) groupInfo(r *wire.GroupInfoRequest) (*wire.GroupInfoResponse, error) {
	gs, err := c.s.groupStore()
	if err != nil {
		return nil, err
	}
	if err := checkGroupID(r.GroupId); err != nil {
		return nil, err
	}
	st, err := gs.Group(c.ctx, r.GroupId)
	if err != nil {
		return nil, err
	}
	for _, m := range st.Members {
		if m.Account == c.dev.Account {
			if len(st.GroupInfo) > GroupInlineMax {
				return &wire.GroupInfoResponse{Epoch: st.Epoch, Size: uint64(len(st.GroupInfo))}, nil
			}
			return &wire.GroupInfoResponse{Epoch: st.Epoch, GroupInfo: st.GroupInfo}, nil
		}
	}
	return nil, fmt.Errorf("%w: group", ErrNotFound)
}

// groupWake tells the connected member devices (but the sender) that a
// group has something new; they fetch it. Devices on other relay nodes
// and offline ones fetch when they next connect.
func (s *Server) groupWake(members []DeviceAddr, sender DeviceAddr) {
	s.groupWakeWith(members, map[DeviceAddr]bool{sender: true}, &wire.Push{Body: &wire.Push_GroupWaiting{GroupWaiting: &wire.GroupWaiting{}}})
}

// groupWakeWith pushes p, encoded once, to the connected member devices
// but those in skip.
func (s *Server) groupWakeWith(members []DeviceAddr, skip map[DeviceAddr]bool, p *wire.Push) {
	var conns []*conn
	s.mu.Lock()
	for _, m := range members {
		if skip[m] {
			continue
		}
		if c := s.byDev[m]; c != nil {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	if len(conns) == 0 {
		return
	}
	b, err := wire.AppendFrame(nil, &wire.Frame{Kind: &wire.Frame_Push{Push: p}})
	if err != nil {
		s.log.Error("encoding a group push", "err", err)
		return
	}
	for _, c := range conns {
		// A failed push means a closed connection: the device fetches
		// when it reconnects.
		_ = c.queue(b)
	}
}

// groupNotifyNodes tells the other relay nodes, when the bus reaches
// them, to wake their connected member devices of the group.
func (s *Server) groupNotifyNodes(ctx context.Context, group []byte, sender DeviceAddr, commit bool) {
	gb, ok := s.bus.(GroupBus)
	if !ok {
		return
	}
	if err := gb.NotifyGroup(ctx, group, sender, commit); err != nil {
		// Stored: the members on other nodes fetch when they reconnect.
		s.log.Warn("group wake-up to the other nodes", "err", err)
	}
}

// groupWoken handles another node's group wake-up: the group's member
// devices connected here (but the sender) are told. After a commit the
// cached member list is read again.
func (s *Server) groupWoken(group []byte, sender DeviceAddr, commit bool) {
	gs, err := s.groupStore()
	if err != nil {
		return
	}
	if commit {
		s.groups.forget(group)
	}
	members, err := s.groups.members(s.ctx, gs, group)
	if err != nil {
		s.log.Warn("group members for another node's wake-up", "err", err)
		return
	}
	s.groupWake(members, sender)
}

// groupCache keeps recent groups' member devices for the wake-up pushes
// of their messages, so that a send reads one member row (the sender's)
// instead of all of them. A commit accepted here drops its group's entry,
// and so does another node's group wake-up for a commit (GroupBus); if
// that wake-up is lost the entry lags until evicted, which only costs
// wake-ups (a device fetches on connect anyway), never access: the store
// checks every sender and committer.
//
// A commit accepted here also keeps the entry from being filled again
// while it is stored (commit): a member list read while a commit is under
// way may be the one before it, and pushes carry messages (grouppush.go),
// which a device removed by the commit must not get.
type groupCache struct {
	mu sync.Mutex
	m  map[string][]DeviceAddr
	// committing counts the commits under way per group; gen changes
	// at each commit's start and end, so that a read that overlapped
	// one is not kept.
	committing map[string]int
	gen        uint64
}

// commit marks a commit of group id under way, dropping its entry; the
// returned func ends it (after the store answered), dropping it again.
func (gc *groupCache) commit(id []byte) (done func()) {
	gc.mu.Lock()
	if gc.committing == nil {
		gc.committing = make(map[string]int)
	}
	gc.committing[string(id)]++
	gc.gen++
	delete(gc.m, string(id))
	gc.mu.Unlock()
	return func() {
		gc.mu.Lock()
		if gc.committing[string(id)]--; gc.committing[string(id)] <= 0 {
			delete(gc.committing, string(id))
		}
		gc.gen++
		delete(gc.m, string(id))
		gc.mu.Unlock()
	}
}

// maxCachedGroups bounds the cache; past it an arbitrary entry goes.
const maxCachedGroups = 4096

func (gc *groupCache) members(ctx context.Context, gs GroupStore, id []byte) ([]DeviceAddr, error) {
	gc.mu.Lock()
	ms, ok := gc.m[string(id)]
	gen := gc.gen
	gc.mu.Unlock()
	if ok {
		return ms, nil
	}
	st, err := gs.Group(ctx, id)
	if err != nil {
		return nil, err
	}
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.gen != gen || gc.committing[string(id)] > 0 {
		// A commit overlapped the read: not kept.
		return st.Members, nil
	}
	if gc.m == nil {
		gc.m = make(map[string][]DeviceAddr)
	}
	if len(gc.m) >= maxCachedGroups {
		for k := range gc.m {
			delete(gc.m, k)
			break
		}
	}
	gc.m[string(id)] = st.Members
	return st.Members, nil
}

func (gc *groupCache) forget(id []byte) {
	gc.mu.Lock()
	gc.gen++
	delete(gc.m, string(id))
	gc.mu.Unlock()
}

// expireGroups deletes group messages every member has, and those older
// than the mailbox lifetime.
func (s *Server) expireGroups(ctx context.Context) {
	gs, err := s.groupStore()
	if err != nil {
		return
	}
	s.groupUploads.expire(s.cfg.Now().Add(-groupUploadIdle))
	n, err := gs.ExpireGroups(ctx, s.cfg.Now().Add(-s.cfg.MailboxTTL))
	if err != nil {
		s.log.Warn("expiring group messages", "err", err)
		return
	}
	if n > 0 {
		s.log.Info("expired group messages", "count", n)
	}
}
