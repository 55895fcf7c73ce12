package relay

import (
	"slices"
	"sync"
	"time"

	"sotto/wire"
)

// Group pushes with the message inside (issue 14).
//
// A group message used to cost every connected member device three
// round trips on the relay: a GroupWaiting push, a GroupFetch (a query
// over its member rows and the messages after its cursor) and a
// GroupAck. On a single relay node whose store numbers each group's
// messages densely (GroupSeqsDense), a small application message now
// rides in the push itself, with the sequence number of the group's
// message before it (prev_seq). A device that took in exactly prev_seq
// takes the message in and acknowledges it, in a batch with others, and
// never fetches; any other device (one that missed a push, or connected
// without knowing where it is, or an older client) fetches as before.
// The device's cursor still only moves by its own acknowledgement, so
// acknowledged = durable and fetch-on-connect are unchanged.
//
// Order: the pushes of one group leave in sequence order (groupPusher),
// several messages at a time when they come together, so that the
// members' prev_seq checks hold; a message whose predecessor's push does
// not come within groupPushGap (a send whose answer failed) is pushed
// anyway, and devices fetch.
//
// Who gets the content: the members the relay's member cache holds for
// the message. A commit accepted here drops the entry before and after
// it is stored (groupCache.commit), so a device removed by a commit is
// never pushed a message stored after that commit. With several relay
// nodes (a GroupBus), another node's commit reaches this node's cache
// only when its wake-up does, so there the pushes stay plain wake-ups.

// GroupSeqsDense is implemented by a GroupStore that numbers every
// group's messages and commits 1, 2, 3, … with no gap, so that the
// message before seq is seq-1 for every device it is delivered to. The
// relay pushes small messages inline only for such stores.
type GroupSeqsDense interface {
	GroupSeqsDense() bool
}

// GroupPushInlineMax is the largest group message content a push
// carries; a larger one is fetched.
const GroupPushInlineMax = 16 << 10

const (
	// groupPushBytes bounds the messages of one push frame.
	groupPushBytes = 256 << 10
	// groupPushGap is how long a group's later messages wait for the
	// push of an earlier one.
	groupPushGap = 50 * time.Millisecond
	// maxPushGroups bounds the groups whose next push is remembered.
	maxPushGroups = 4096
	// maxFlushRounds bounds the rounds of pushes a request's goroutine
	// makes for its group (others' messages that came meanwhile).
	maxFlushRounds = 4
)

// groupPush is one stored group message (or commit) to push.
type groupPush struct {
	seq     uint64
	msg     *wire.GroupMessage // nil: a plain wake-up (a commit, a large message)
	members []DeviceAddr
	sender  DeviceAddr
}

// groupPusher keeps each group's pushes in sequence order.
type groupPusher struct {
	mu sync.Mutex
	m  map[string]*groupOrder
}

type groupOrder struct {
	next     uint64 // the next seq to push; 0 before the first
	pending  []groupPush
	flushing bool
	timer    *time.Timer
}

// groupInline reports whether pushes may carry group messages.
func (s *Server) groupInline(gs GroupStore) bool {
	if _, multi := s.bus.(GroupBus); multi {
		return false
	}
	d, ok := gs.(GroupSeqsDense)
	return ok && d.GroupSeqsDense()
}

// groupPushed hands the stored message p of group to the pusher, which
// pushes it (and any others now in order) to the connected members.
func (s *Server) groupPushed(group []byte, p groupPush) {
	gp := &s.groupPush
	key := string(group)
	gp.mu.Lock()
	if gp.m == nil {
		gp.m = make(map[string]*groupOrder)
	}
	o := gp.m[key]
	if o == nil {
		if len(gp.m) >= maxPushGroups {
			for k, x := range gp.m {
				if !x.flushing && len(x.pending) == 0 {
					delete(gp.m, k)
				}
			}
		}
		o = &groupOrder{}
		gp.m[key] = o
	}
	if o.next != 0 && p.seq < o.next {
		// Its place has passed (a resubmitted commit, or a push that
		// came after groupPushGap): pushed as it is; devices check.
		gp.mu.Unlock()
		s.groupPushBatch([]groupPush{p})
		return
	}
	i, _ := slices.BinarySearchFunc(o.pending, p.seq, func(x groupPush, seq uint64) int { return cmpSeq(x.seq, seq) })
	if i < len(o.pending) && o.pending[i].seq == p.seq {
		gp.mu.Unlock()
		return // the same commit accepted again
	}
	o.pending = slices.Insert(o.pending, i, p)
	if o.next == 0 {
		o.next = p.seq
	}
	if o.flushing {
		gp.mu.Unlock()
		return // the flushing goroutine takes it
	}
	o.flushing = true
	gp.mu.Unlock()
	s.groupFlush(key, o, false)
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// groupFlush pushes o's pending messages that are in order (with gap:
// all of them), until none is; the caller set o.flushing.
func (s *Server) groupFlush(key string, o *groupOrder, gap bool) {
	gp := &s.groupPush
	for rounds := 0; ; rounds++ {
		gp.mu.Lock()
		if rounds == maxFlushRounds && len(o.pending) > 0 && o.pending[0].seq == o.next {
			// More keeps coming: another goroutine takes over (o stays
			// flushing), so that this one's sender gets its answer.
			gp.mu.Unlock()
			time.AfterFunc(0, func() { s.groupFlush(key, o, false) })
			return
		}
		n := 0
		for n < len(o.pending) && (gap || o.pending[n].seq == o.next) {
			o.next = o.pending[n].seq + 1
			n++
		}
		gap = false
		if n == 0 {
			o.flushing = false
			if len(o.pending) > 0 && o.timer == nil {
				o.timer = time.AfterFunc(groupPushGap, func() { s.groupGapTimeout(key, o) })
			}
			gp.mu.Unlock()
			return
		}
		ready := slices.Clone(o.pending[:n])
		o.pending = slices.Delete(o.pending, 0, n)
		if o.timer != nil {
			o.timer.Stop()
			o.timer = nil
		}
		gp.mu.Unlock()
		s.groupPushBatch(ready)
	}
}

// groupGapTimeout pushes what waited groupPushGap for a message before it.
func (s *Server) groupGapTimeout(key string, o *groupOrder) {
	gp := &s.groupPush
	gp.mu.Lock()
	o.timer = nil
	if o.flushing || len(o.pending) == 0 || s.ctx.Err() != nil {
		gp.mu.Unlock()
		return
	}
	o.flushing = true
	gp.mu.Unlock()
	s.groupFlush(key, o, true)
}

// groupPushBatch pushes ps (in order) to their connected members: runs
// of messages with the same members go in one frame, encoded once.
func (s *Server) groupPushBatch(ps []groupPush) {
	for len(ps) > 0 {
		n, size := 1, 0
		if ps[0].msg != nil {
			size = len(ps[0].msg.Content)
			for n < len(ps) && ps[n].msg != nil && sameMembers(ps[n].members, ps[0].members) && size+len(ps[n].msg.Content) <= groupPushBytes {
				size += len(ps[n].msg.Content)
				n++
			}
		}
		run := ps[:n]
		ps = ps[n:]
		if run[0].msg == nil {
			s.groupWake(run[0].members, run[0].sender)
			continue
		}
		gw := &wire.GroupWaiting{}
		senders := map[DeviceAddr]bool{}
		for _, p := range run {
			gw.Messages = append(gw.Messages, p.msg)
			senders[p.sender] = true
		}
		s.groupWakeWith(run[0].members, senders, &wire.Push{Body: &wire.Push_GroupWaiting{GroupWaiting: gw}})
		// A sender gets its own messages without their content (it has
		// them), so that its pushes follow one another without a gap.
		for sender := range senders {
			own := &wire.GroupWaiting{}
			for _, p := range run {
				m := p.msg
				if p.sender == sender {
					m = &wire.GroupMessage{GroupId: m.GroupId, Seq: m.Seq, Kind: m.Kind, ServerTimestampMs: m.ServerTimestampMs, PrevSeq: m.PrevSeq}
				}
				own.Messages = append(own.Messages, m)
			}
			s.groupWakeWith([]DeviceAddr{sender}, nil, &wire.Push{Body: &wire.Push_GroupWaiting{GroupWaiting: own}})
		}
	}
}

// sameMembers: the cache hands out one slice per entry.
func sameMembers(a, b []DeviceAddr) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
