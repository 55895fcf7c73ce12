package natsgroups

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"sotto/relay"
)

// ExpireGroups implements relay.GroupStore by scanning every group:
// it completes a pending entry, then deletes messages older than
// before, forgets removed devices that have the commit removing them
// (or whose commit expired), and deletes the messages every remaining
// member acknowledged. The group's low mark is raised before anything
// is deleted, so that a deleted entry is never taken for one not yet
// materialized.
func (s *Store) ExpireGroups(ctx context.Context, before time.Time) (int64, error) {
	if err := s.live(); err != nil {
		return 0, err
	}
	keys, err := s.listKeys(ctx, "g.*")
	if err != nil {
		return 0, err
	}
	var n int64
	for _, k := range keys {
		gid, err := parseGroupToken(strings.TrimPrefix(k, "g."))
		if err != nil {
			return n, err
		}
		d, err := s.expireGroup(ctx, gid, before.UnixMilli())
		n += d
		if err != nil {
			return n, fmt.Errorf("natsgroups: expire: %w", err)
		}
	}
	return n, nil
}

func (s *Store) expireGroup(ctx context.Context, gid []byte, cut int64) (int64, error) {
	h, _, found, err := s.loadHead(ctx, gid)
	if err != nil || !found {
		return 0, err
	}
	es, err := s.watchValues(ctx, "m."+gtok(gid)+".*")
	if err != nil {
		return 0, err
	}
	var msgs []*entry
	for _, r := range es {
		e, err := decodeEntry(r.Value())
		if err != nil {
			return 0, err
		}
		msgs = append(msgs, e)
	}
	slices.SortFunc(msgs, func(a, b *entry) int { return cmp.Compare(a.Seq, b.Seq) })
	ms, err := s.members(ctx, gid, nil)
	if err != nil {
		return 0, err
	}
	// What goes: old messages, then (after forgetting removed devices)
	// what every member has acknowledged.
	doomed := map[uint64]bool{}
	live := map[uint64]bool{}
	for _, e := range msgs {
		if e.TS < cut {
			doomed[e.Seq] = true
		} else {
			live[e.Seq] = true
		}
	}
	var forget []memberRow
	minAcked, any := uint64(0), false
	for _, m := range ms {
		if m.Left > 0 && (m.Acked >= m.Left || !live[m.Left]) {
			forget = append(forget, m)
			continue
		}
		if !any || m.Acked < minAcked {
			minAcked, any = m.Acked, true
		}
	}
	low := h.Next
	for _, e := range msgs {
		if any && e.Seq <= minAcked {
			doomed[e.Seq] = true
		}
		if !doomed[e.Seq] {
			low = min(low, e.Seq)
		}
	}
	if err := s.raiseLow(ctx, gid, low); err != nil {
		return 0, err
	}
	var n int64
	for _, e := range msgs {
		if !doomed[e.Seq] {
			continue
		}
		ok, err := s.remove(ctx, msgKey(gid, e.Seq))
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
		if e.Kind == relay.GroupKindCommit {
			_, err = s.remove(ctx, epochKey(gid, e.Epoch))
		} else if sender, err1 := e.sender(); err1 == nil {
			_, err = s.remove(ctx, sendKey(gid, sender, e.MsgID))
		}
		if err != nil {
			return n, err
		}
		s.dropBody(ctx, e.Content)
		if e.Welcome != nil {
			s.dropBody(ctx, *e.Welcome)
		}
	}
	for _, m := range forget {
		// A tombstone, under compare-and-set: a commit adding the device
		// again meanwhile wins.
		m.Gone = true
		err := s.setJSON(ctx, memberKey(gid, m.addr), &m.member, m.rev, true)
		if conflict(err) {
			continue
		}
		if err != nil {
			return n, err
		}
		if _, err := s.remove(ctx, indexKey(m.addr, gid)); err != nil {
			return n, err
		}
	}
	return n, nil
}

// raiseLow moves the group's low mark up to lo.
func (s *Store) raiseLow(ctx context.Context, gid []byte, lo uint64) error {
	for {
		cur, rev, err := s.low(ctx, gid)
		if err != nil || cur >= lo {
			return err
		}
		err = s.setJSON(ctx, lowKey(gid), lo, rev, rev != 0)
		if !conflict(err) {
			return err
		}
	}
}
