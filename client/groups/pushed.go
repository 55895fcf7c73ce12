package groups

import (
	"context"
	"fmt"
	"sync"
	"time"

	"sotto/wire"
)

// Group messages carried in the relay's pushes (relay/grouppush.go).
//
// The relay puts a small group message in its GroupWaiting push, with
// the seq of the group's message before it (prev_seq). This device takes
// a pushed message in, without a GroupFetch, only when prev_seq is the
// last seq it took in of that group (seenSeqs): then nothing before it
// is missing, and the order per group holds. Anything else (a group this
// device has taken in nothing of since it started, a push lost or out of
// order, a commit, a message too large to push) is a sync: fetch from
// the cursor, as before. A pushed message without content is this
// device's own: it only moves the last seq on.
//
// What the pushes brought is acknowledged in batches (ackBatch), always
// after it is kept, so acknowledged = kept here stays true; a message
// kept but not acknowledged (a crash in between) comes again in a fetch
// and is dropped as a repeat, by seq (keepMessage) or by MLS (its key is
// used up).

// pushedRelay is a Relay whose pushes carry group messages
// (client/transport.Conn).
type pushedRelay interface {
	GroupPushed() (msgs []*wire.GroupMessage, ok bool)
}

// seenSeqs holds, per group, the last seq this device took in (in this
// process: unknown groups sync), and what woken took in but has not yet
// acknowledged.
type seenSeqs struct {
	mu   sync.Mutex
	last map[string]uint64
	// unacked: per group, the last seq to acknowledge; receipts: the ids
	// to send delivery receipts for; n: messages waiting.
	unacked  map[string]uint64
	receipts map[string][][]byte
	n        int
}

// took records that seq of group was taken in (or is covered by the
// device's cursor).
func (s *seenSeqs) took(group string, seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		s.last = make(map[string]uint64)
	}
	if seq > s.last[group] {
		s.last[group] = seq
	}
}

func (s *seenSeqs) get(group string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, ok := s.last[group]
	return seq, ok
}

func (s *seenSeqs) forget(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.last, group)
}

// toAck records seq of group, taken in, for the next acknowledgement.
func (s *seenSeqs) toAck(group string, seq uint64, receipts [][]byte) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.unacked == nil {
		s.unacked, s.receipts = make(map[string]uint64), make(map[string][][]byte)
	}
	s.unacked[group] = max(s.unacked[group], seq)
	s.receipts[group] = append(s.receipts[group], receipts...)
	s.n++
	return s.n
}

// takeAcks returns and forgets what waits for an acknowledgement.
func (s *seenSeqs) takeAcks() (map[string]uint64, map[string][][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acks, receipts := s.unacked, s.receipts
	s.unacked, s.receipts, s.n = nil, nil, 0
	return acks, receipts
}

// ackWaiting reports whether something waits for an acknowledgement.
func (s *seenSeqs) ackWaiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n > 0
}

// The acknowledgements of pushed messages wait for ackBatch messages or
// ackDelay after a wake-up (Watch), whichever comes first; a sync sends
// them first. Until then the relay keeps the messages for this device:
// a crash in between only brings them again, dropped as repeats.
const (
	ackBatch = 64
	ackDelay = 200 * time.Millisecond
)

// flushAcks sends the waiting acknowledgements (one GroupAck), then the
// delivery receipts of the messages they cover; the caller holds the
// syncing token.
func (m *Manager) flushAcks(ctx context.Context, r Relay) error {
	acked, receipts := m.seen.takeAcks()
	if len(acked) == 0 {
		return nil
	}
	var acks []*wire.GroupAck
	for g, seq := range acked {
		acks = append(acks, &wire.GroupAck{GroupId: []byte(g), Seq: seq})
	}
	if err := r.GroupAck(ctx, acks); err != nil {
		return fmt.Errorf("groups: ack: %w", err)
	}
	for g, ids := range receipts {
		if len(ids) == 0 {
			continue
		}
		if err := m.sendReceipts(ctx, []byte(g), ids, false); err != nil {
			m.log.Info("group delivery receipts", "err", err)
		}
	}
	return nil
}

// flushAcksNow is flushAcks for Watch's timer.
func (m *Manager) flushAcksNow(ctx context.Context, r Relay) error {
	select {
	case m.syncing <- struct{}{}:
		defer func() { <-m.syncing }()
	case <-ctx.Done():
		return ctx.Err()
	}
	return m.flushAcks(ctx, r)
}

// woken handles a GroupWaiting signal: the pushed messages that follow
// what this device has are taken in (their acknowledgement waits, see
// ackBatch); if any other message is waiting, a sync follows.
func (m *Manager) woken(ctx context.Context, r Relay) ([]Message, error) {
	pr, ok := r.(pushedRelay)
	if !ok {
		return m.Sync(ctx)
	}
	select {
	case m.syncing <- struct{}{}:
		defer func() { <-m.syncing }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	pushed, ok := pr.GroupPushed()
	if !ok {
		return m.sync(ctx, nil)
	}
	if len(pushed) == 0 {
		return nil, nil // taken in at the last signal
	}
	if err := m.migrateMessages(ctx); err != nil {
		return nil, err
	}
	if _, err := m.Expire(ctx, time.Now()); err != nil {
		return nil, err
	}
	var out []Message
	// covered: groups with a message that could not be taken in here,
	// and the highest such seq; blocked ones take nothing more here.
	covered := map[string]uint64{}
	rejoin := map[string]bool{}
	waiting := 0
	for _, gm := range pushed {
		key := string(gm.GroupId)
		last, known := m.seen.get(key)
		if _, blocked := covered[key]; blocked || !known || gm.PrevSeq == 0 || gm.PrevSeq != last ||
			gm.Kind != wire.GroupMessageKind_GROUP_MESSAGE {
			if known && gm.Seq <= last {
				continue // taken in already (by a fetch)
			}
			covered[key] = max(covered[key], gm.Seq)
			continue
		}
		if len(gm.Content) == 0 {
			// This device's own message: kept when sent.
			waiting = m.seen.toAck(key, gm.Seq, nil)
			m.seen.took(key, gm.Seq)
			continue
		}
		res, err := m.process(ctx, gm)
		if err != nil {
			return out, err
		}
		if !res.ok {
			// Not now: left on the relay for the sync.
			covered[key] = gm.Seq
			continue
		}
		var receipts [][]byte
		for _, msg := range res.msgs {
			out = append(out, msg)
			if !msg.Updated && msg.Kind == "" && msg.From != m.self.Username && len(msg.ID) > 0 {
				receipts = append(receipts, msg.ID)
			}
		}
		waiting = m.seen.toAck(key, gm.Seq, receipts)
		if res.rejoin {
			// A fork or a withheld commit: rejoin (below), then sync.
			rejoin[key] = true
			covered[key] = 0
		} else {
			m.seen.took(key, gm.Seq)
		}
	}
	if len(rejoin) > 0 || len(covered) > 0 || waiting >= ackBatch {
		if err := m.flushAcks(ctx, r); err != nil {
			return out, err
		}
	}
	for g := range rejoin {
		if err := m.rejoin(ctx, []byte(g)); err != nil {
			m.log.Warn("rejoining a group", "err", err)
		}
		m.seen.forget(g)
	}
	if len(covered) == 0 {
		return out, nil
	}
	more, err := m.sync(ctx, covered)
	return append(out, more...), err
}
