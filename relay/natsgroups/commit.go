package natsgroups

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"sotto/relay"
)

// loadHead reads a group's head and materializes its pending entry if
// that is not done yet, so that every record derived from the entries
// up to the head is in place.
func (s *Store) loadHead(ctx context.Context, gid []byte) (*head, uint64, bool, error) {
	r, err := s.kv.Get(ctx, headKey(gid))
	if notFound(err) {
		return &head{}, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("natsgroups: head: %w", err)
	}
	h, err := decodeHead(r.Value())
	if err != nil {
		return nil, 0, false, err
	}
	rev := r.Revision()
	if h.Pending == nil {
		return h, rev, true, nil
	}
	e, err := decodeEntry(h.Pending)
	if err != nil {
		return nil, 0, false, err
	}
	done, err := s.materialized(ctx, gid, e.Seq)
	if err != nil {
		return nil, 0, false, err
	}
	if !done {
		if err := s.materialize(ctx, gid, e); err != nil {
			return nil, 0, false, err
		}
	}
	return h, rev, true, nil
}

func (s *Store) crashed() error {
	if s.crashAfterCommit != nil {
		return s.crashAfterCommit()
	}
	return nil
}

// materialized reports whether the entry at seq has its records: its
// message record is there, or ExpireGroups has moved past it.
func (s *Store) materialized(ctx context.Context, gid []byte, seq uint64) (bool, error) {
	_, err := s.kv.Get(ctx, msgKey(gid, seq))
	if err == nil {
		return true, nil
	}
	if !notFound(err) {
		return false, fmt.Errorf("natsgroups: %w", err)
	}
	lo, _, err := s.low(ctx, gid)
	return seq < lo, err
}

func lowKey(gid []byte) string { return "lo." + gtok(gid) }

// low is the lowest sequence number ExpireGroups may have left stored.
func (s *Store) low(ctx context.Context, gid []byte) (uint64, uint64, error) {
	var lo uint64
	rev, _, err := s.getJSON(ctx, lowKey(gid), &lo)
	return lo, rev, err
}

// updateMember applies fn to d's record in the group under
// compare-and-set; fn says whether it changed it.
func (s *Store) updateMember(ctx context.Context, gid []byte, d relay.DeviceAddr, fn func(m *member, found bool) bool) error {
	key := memberKey(gid, d)
	for {
		var m member
		rev, found, err := s.getJSON(ctx, key, &m)
		if err != nil {
			return err
		}
		if !fn(&m, found) {
			return nil
		}
		err = s.setJSON(ctx, key, &m, rev, found)
		if conflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("natsgroups: member %v: %w", d, err)
		}
		return nil
	}
}

// materialize writes the records derived from entry e: member changes,
// the device index, the epoch or idempotence record, the sender's
// cursor, then the message record (which marks it done). Every step is
// idempotent and guarded by the member records' sequence numbers, so
// that it may run twice, or late, without effect.
func (s *Store) materialize(ctx context.Context, gid []byte, e *entry) error {
	sender, err := e.sender()
	if err != nil {
		return err
	}
	seq := e.Seq
	if e.Kind == relay.GroupKindCommit {
		if e.Create {
			if err := s.updateMember(ctx, gid, sender, func(m *member, found bool) bool {
				if found {
					return false
				}
				*m = member{}
				return true
			}); err != nil {
				return err
			}
			if err := s.index(ctx, sender, gid); err != nil {
				return err
			}
		}
		removed, err := unpackAddrs(e.Removed)
		if err != nil {
			return err
		}
		for _, r := range removed {
			if err := s.updateMember(ctx, gid, r, func(m *member, found bool) bool {
				if !found || m.Gone || m.Left != 0 || m.Joined >= seq {
					return false
				}
				m.Left = seq
				return true
			}); err != nil {
				return err
			}
		}
		added, err := unpackAddrs(e.Added)
		if err != nil {
			return err
		}
		if e.External {
			// The joiner has the commit it made: its cursor starts past it
			// (the sender's catch-up below).
			added = append([]relay.DeviceAddr{sender}, added...)
		}
		for _, a := range added {
			if err := s.updateMember(ctx, gid, a, func(m *member, found bool) bool {
				if found && m.Joined >= seq {
					return false
				}
				*m = member{Joined: seq, Acked: seq - 1}
				return true
			}); err != nil {
				return err
			}
			if err := s.index(ctx, a, gid); err != nil {
				return err
			}
		}
		if _, err := s.kv.Put(ctx, epochKey(gid, e.Epoch), strconv.AppendUint(nil, seq, 10)); err != nil {
			return fmt.Errorf("natsgroups: epoch record: %w", err)
		}
	} else {
		if _, err := s.kv.Put(ctx, sendKey(gid, sender, e.MsgID), strconv.AppendUint(nil, seq, 10)); err != nil {
			return fmt.Errorf("natsgroups: send record: %w", err)
		}
	}
	// The sender's own messages are not delivered back to it, so would
	// otherwise hold back the cleanup.
	if err := s.updateMember(ctx, gid, sender, func(m *member, found bool) bool {
		if !found || m.Gone || m.Acked != seq-1 {
			return false
		}
		m.Acked = seq
		return true
	}); err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, msgKey(gid, seq), e.encode(false)); err != nil {
		return fmt.Errorf("natsgroups: message record: %w", err)
	}
	return nil
}

// index records that d is (or was) in the group, for FetchGroups.
func (s *Store) index(ctx context.Context, d relay.DeviceAddr, gid []byte) error {
	if _, err := s.kv.Put(ctx, indexKey(d, gid), []byte{1}); err != nil {
		return fmt.Errorf("natsgroups: device index: %w", err)
	}
	return nil
}

// memberRow is one member record.
type memberRow struct {
	addr relay.DeviceAddr
	member
	rev uint64
}

// members lists a group's member records (tombstones left out); with
// account set, only that account's.
func (s *Store) members(ctx context.Context, gid []byte, account *relay.AccountID) ([]memberRow, error) {
	prefix := "mem." + gtok(gid) + "."
	filter := prefix + ">"
	if account != nil {
		filter = prefix + account.String() + ".*"
	}
	es, err := s.watchValues(ctx, filter)
	if err != nil {
		return nil, err
	}
	var out []memberRow
	for _, e := range es {
		acct, dev, ok := strings.Cut(strings.TrimPrefix(e.Key(), prefix), ".")
		a, err := relay.ParseAccountID(acct)
		d, err2 := strconv.ParseUint(dev, 10, 32)
		if !ok || err != nil || err2 != nil {
			return nil, fmt.Errorf("natsgroups: bad member key %q", e.Key())
		}
		r := memberRow{addr: relay.DeviceAddr{Account: a, Device: uint32(d)}, rev: e.Revision()}
		if err := json.Unmarshal(e.Value(), &r.member); err != nil {
			return nil, fmt.Errorf("natsgroups: bad member record %q: %w", e.Key(), err)
		}
		if !r.Gone {
			out = append(out, r)
		}
	}
	return out, nil
}

func current(ms []memberRow, d relay.DeviceAddr) bool {
	for _, m := range ms {
		if m.addr == d && m.Left == 0 {
			return true
		}
	}
	return false
}

func accountIn(ms []memberRow, a relay.AccountID) bool {
	for _, m := range ms {
		if m.addr.Account == a && m.Left == 0 {
			return true
		}
	}
	return false
}

// CommitGroup implements relay.GroupStore. The head's compare-and-set is
// the commit point: of two commits for one epoch, the one whose set
// lands first wins, the other reads the new head and gets the winner.
func (s *Store) CommitGroup(ctx context.Context, c *relay.GroupCommit) (relay.GroupCommitResult, error) {
	if err := s.live(); err != nil {
		return relay.GroupCommitResult{}, err
	}
	var (
		written        bool
		cb, wb, gb     body
		hasWelcome     = len(c.Welcome) > 0
		addedForResult = c.Added
	)
	drop := func() {
		if written {
			s.dropBody(ctx, cb)
			s.dropBody(ctx, wb)
			s.dropBody(ctx, gb)
		}
	}
	for {
		h, rev, found, err := s.loadHead(ctx, c.GroupID)
		if err != nil {
			drop()
			return relay.GroupCommitResult{}, err
		}
		var ms []memberRow
		if !found {
			if c.Epoch != 0 || c.External {
				drop()
				return relay.GroupCommitResult{}, fmt.Errorf("%w: group", relay.ErrNotFound)
			}
		} else {
			if ms, err = s.members(ctx, c.GroupID, nil); err != nil {
				drop()
				return relay.GroupCommitResult{}, err
			}
			if c.External {
				if !current(ms, c.Sender) && !accountIn(ms, c.Sender.Account) {
					drop()
					return relay.GroupCommitResult{}, fmt.Errorf("%w: an external commit joins a device of a member account", relay.ErrForbidden)
				}
			} else if !current(ms, c.Sender) {
				drop()
				return relay.GroupCommitResult{}, fmt.Errorf("%w: not a member of the group", relay.ErrForbidden)
			}
			if h.Epoch != c.Epoch {
				drop()
				return s.lostCommit(ctx, c, h.Epoch)
			}
		}
		if !written {
			written = true
			var err1, err2, err3 error
			cb, err1 = s.putBody(ctx, c.Commit)
			wb, err2 = s.putBody(ctx, c.Welcome)
			gb, err3 = s.putBody(ctx, c.GroupInfo)
			if err := errors.Join(err1, err2, err3); err != nil {
				drop()
				return relay.GroupCommitResult{}, err
			}
		}
		seq := uint64(1)
		nh := head{Epoch: c.Epoch + 1, Created: c.Timestamp.UnixMilli(), GroupInfo: gb, Info: gb.data}
		if found {
			seq, nh.Created = h.Next, h.Created
		}
		nh.Next = seq + 1
		e := &entry{Seq: seq, Kind: relay.GroupKindCommit, Epoch: c.Epoch, TS: c.Timestamp.UnixMilli(), Sender: packAddrs([]relay.DeviceAddr{c.Sender}),
			Content: cb, Create: !found, External: c.External, Added: packAddrs(c.Added), Removed: packAddrs(c.Removed)}
		if hasWelcome {
			e.Welcome = &wb
		}
		nh.Pending = e.encode(true)
		err = s.set(ctx, headKey(c.GroupID), nh.encode(), rev, found)
		if conflict(err) {
			continue
		}
		if err != nil {
			drop()
			return relay.GroupCommitResult{}, fmt.Errorf("natsgroups: commit: %w", err)
		}
		// Committed. An error from here on is a lost answer: the commit
		// is durable, and its retry is accepted again.
		if err := s.crashed(); err != nil {
			return relay.GroupCommitResult{}, err
		}
		if err := s.materialize(ctx, c.GroupID, e); err != nil {
			return relay.GroupCommitResult{}, err
		}
		if found && h.GroupInfo.Blob != "" && h.GroupInfo.Blob != gb.Blob {
			s.dropBody(ctx, h.GroupInfo)
		}
		delivered := make([]relay.DeviceAddr, 0, len(ms)+len(addedForResult)+1)
		for _, m := range ms {
			delivered = append(delivered, m.addr)
		}
		if !found {
			delivered = append(delivered, c.Sender)
		}
		if c.External {
			delivered = append(delivered, c.Sender)
		}
		delivered = append(delivered, addedForResult...)
		return relay.GroupCommitResult{Accepted: true, Seq: seq, Epoch: c.Epoch + 1, Members: delivered}, nil
	}
}

// lostCommit answers a commit that came too late for its epoch: the
// winner, or acceptance if it is the same commit sent again.
func (s *Store) lostCommit(ctx context.Context, c *relay.GroupCommit, epoch uint64) (relay.GroupCommitResult, error) {
	res := relay.GroupCommitResult{Epoch: epoch}
	var seq uint64
	e, err := s.kv.Get(ctx, epochKey(c.GroupID, c.Epoch))
	if notFound(err) {
		return res, nil // an epoch the group never had, or whose commit expired
	}
	if err == nil {
		seq, err = strconv.ParseUint(string(e.Value()), 10, 64)
	}
	if err != nil {
		return res, fmt.Errorf("natsgroups: winning commit: %w", err)
	}
	m, err := s.kv.Get(ctx, msgKey(c.GroupID, seq))
	if notFound(err) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("natsgroups: winning commit: %w", err)
	}
	w, err := decodeEntry(m.Value())
	if err != nil {
		return res, err
	}
	winner, err := s.whole(ctx, w.Content)
	if errors.Is(err, relay.ErrNotFound) {
		return res, nil // expired meanwhile
	}
	if err != nil {
		return res, err
	}
	if bytes.Equal(winner, c.Commit) {
		res.Accepted, res.Seq = true, seq
		return res, nil
	}
	res.Winner, res.WinnerSeq = winner, seq
	return res, nil
}

// AppendGroup implements relay.GroupStore: idempotent on (Sender,
// MessageID), since the idempotence record of every entry up to the
// head is materialized before the check.
func (s *Store) AppendGroup(ctx context.Context, m *relay.GroupSend) (relay.GroupSendResult, error) {
	if err := s.live(); err != nil {
		return relay.GroupSendResult{}, err
	}
	var (
		written bool
		cb      body
	)
	drop := func() {
		if written {
			s.dropBody(ctx, cb)
		}
	}
	for {
		h, rev, found, err := s.loadHead(ctx, m.GroupID)
		if err != nil {
			drop()
			return relay.GroupSendResult{}, err
		}
		if !found {
			drop()
			return relay.GroupSendResult{}, fmt.Errorf("%w: group", relay.ErrNotFound)
		}
		var me member
		_, isMember, err := s.getJSON(ctx, memberKey(m.GroupID, m.Sender), &me)
		if err != nil {
			drop()
			return relay.GroupSendResult{}, err
		}
		if !isMember || me.Gone || me.Left != 0 {
			drop()
			return relay.GroupSendResult{}, fmt.Errorf("%w: not a member of the group", relay.ErrForbidden)
		}
		rec, err := s.kv.Get(ctx, sendKey(m.GroupID, m.Sender, m.MessageID))
		if err == nil {
			drop()
			seq, err := strconv.ParseUint(string(rec.Value()), 10, 64)
			if err != nil {
				return relay.GroupSendResult{}, fmt.Errorf("natsgroups: bad send record: %w", err)
			}
			return relay.GroupSendResult{Seq: seq, Duplicate: true}, nil
		}
		if !notFound(err) {
			drop()
			return relay.GroupSendResult{}, fmt.Errorf("natsgroups: send: %w", err)
		}
		if !written {
			written = true
			if cb, err = s.putBody(ctx, m.Content); err != nil {
				return relay.GroupSendResult{}, err
			}
		}
		seq := h.Next
		e := &entry{Seq: seq, Kind: relay.GroupKindMessage, TS: m.Timestamp.UnixMilli(), Sender: packAddrs([]relay.DeviceAddr{m.Sender}),
			MsgID: m.MessageID, Content: cb}
		nh := *h
		nh.Next, nh.Pending = seq+1, e.encode(true)
		err = s.set(ctx, headKey(m.GroupID), nh.encode(), rev, true)
		if conflict(err) {
			continue
		}
		if err != nil {
			drop()
			return relay.GroupSendResult{}, fmt.Errorf("natsgroups: send: %w", err)
		}
		if err := s.crashed(); err != nil {
			return relay.GroupSendResult{}, err
		}
		if err := s.materialize(ctx, m.GroupID, e); err != nil {
			return relay.GroupSendResult{}, err
		}
		return relay.GroupSendResult{Seq: seq}, nil
	}
}
