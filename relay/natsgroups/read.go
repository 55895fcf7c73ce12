package natsgroups

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"sotto/relay"
)

// delivered returns what dev is delivered of e (the Welcome at the
// commit that added it, else the content), and its kind.
func delivered(e *entry, m *member) (body, uint8) {
	if e.Seq == m.Joined {
		if e.Welcome == nil {
			return body{data: []byte{}}, relay.GroupKindWelcome
		}
		return *e.Welcome, relay.GroupKindWelcome
	}
	return e.Content, e.Kind
}

// message reads and decodes the record at seq; nil when absent.
func (s *Store) message(ctx context.Context, gid []byte, seq uint64) (*entry, error) {
	r, err := s.kv.Get(ctx, msgKey(gid, seq))
	if notFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("natsgroups: message: %w", err)
	}
	return decodeEntry(r.Value())
}

// FetchGroups implements relay.GroupStore: per group of the device (its
// index), the messages after its cursor, read one by one.
func (s *Store) FetchGroups(ctx context.Context, dev relay.DeviceAddr, limit int) ([]relay.GroupMessage, error) {
	if err := s.live(); err != nil {
		return nil, err
	}
	prefix := "dg." + dev.String() + "."
	keys, err := s.listKeys(ctx, prefix+"*")
	if err != nil {
		return nil, err
	}
	slices.Sort(keys) // hex keeps the order of group ids
	var out []relay.GroupMessage
	for _, k := range keys {
		if len(out) >= limit {
			break
		}
		gid, err := parseGroupToken(strings.TrimPrefix(k, prefix))
		if err != nil {
			return nil, err
		}
		h, _, found, err := s.loadHead(ctx, gid)
		if err != nil {
			return nil, err
		}
		var m member
		_, isMember, err := s.getJSON(ctx, memberKey(gid, dev), &m)
		if err != nil {
			return nil, err
		}
		if !found || !isMember || m.Gone {
			continue
		}
		lo, _, err := s.low(ctx, gid)
		if err != nil {
			return nil, err
		}
		last := h.Next - 1
		if m.Left != 0 {
			last = min(last, m.Left)
		}
		for seq := max(m.Acked+1, m.Joined, lo); seq <= last && len(out) < limit; seq++ {
			e, err := s.message(ctx, gid, seq)
			if err != nil {
				return nil, err
			}
			if e == nil {
				continue // expired
			}
			if sender, err := e.sender(); err != nil || sender == dev {
				continue
			}
			b, kind := delivered(e, &m)
			g := relay.GroupMessage{GroupID: gid, Seq: seq, Kind: kind, Epoch: e.Epoch, Timestamp: time.UnixMilli(e.TS), Size: b.Size}
			if b.Size <= relay.GroupInlineMax {
				g.Content = b.data
				if g.Content == nil {
					g.Content = []byte{}
				}
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// ReadGroup implements relay.GroupStore.
func (s *Store) ReadGroup(ctx context.Context, dev relay.DeviceAddr, groupID []byte, seq, offset uint64, n int) ([]byte, uint64, uint64, error) {
	if err := s.live(); err != nil {
		return nil, 0, 0, err
	}
	var (
		b     body
		epoch uint64
	)
	if seq == 0 {
		ms, err := s.members(ctx, groupID, &dev.Account)
		if err != nil {
			return nil, 0, 0, err
		}
		if !accountIn(ms, dev.Account) {
			return nil, 0, 0, fmt.Errorf("%w: group", relay.ErrNotFound)
		}
		return s.readGroupInfo(ctx, groupID, offset, n)
	} else {
		var m member
		_, isMember, err := s.getJSON(ctx, memberKey(groupID, dev), &m)
		if err != nil {
			return nil, 0, 0, err
		}
		if !isMember || m.Gone || seq < m.Joined || (m.Left != 0 && seq > m.Left) {
			return nil, 0, 0, fmt.Errorf("%w: group message", relay.ErrNotFound)
		}
		e, err := s.message(ctx, groupID, seq)
		if err != nil {
			return nil, 0, 0, err
		}
		if e == nil {
			return nil, 0, 0, fmt.Errorf("%w: group message", relay.ErrNotFound)
		}
		if sender, err := e.sender(); err != nil || sender == dev {
			return nil, 0, 0, fmt.Errorf("%w: group message", relay.ErrNotFound)
		}
		b, _ = delivered(e, &m)
		epoch = e.Epoch
	}
	if offset > b.Size {
		return nil, 0, 0, fmt.Errorf("%w: offset past the end", relay.ErrBadRequest)
	}
	data, err := s.readBody(ctx, b, offset, n)
	if err != nil {
		return nil, 0, 0, err
	}
	return data, b.Size, epoch, nil
}

// AckGroups implements relay.GroupStore: each cursor moves forward only,
// under compare-and-set.
func (s *Store) AckGroups(ctx context.Context, dev relay.DeviceAddr, acks []relay.GroupAck) error {
	if err := s.live(); err != nil {
		return err
	}
	for _, k := range acks {
		if err := s.updateMember(ctx, k.GroupID, dev, func(m *member, found bool) bool {
			if !found || m.Gone || m.Acked >= k.Seq {
				return false
			}
			m.Acked = k.Seq
			return true
		}); err != nil {
			return err
		}
	}
	return nil
}

// Group implements relay.GroupStore.
func (s *Store) Group(ctx context.Context, groupID []byte) (relay.GroupState, error) {
	var st relay.GroupState
	if err := s.live(); err != nil {
		return st, err
	}
	h, _, found, err := s.loadHead(ctx, groupID)
	if err != nil {
		return st, err
	}
	if !found {
		return st, fmt.Errorf("%w: group", relay.ErrNotFound)
	}
	gi := h.groupInfo()
	if gi.Blob != "" {
		if st.GroupInfo, _, _, err = s.readGroupInfo(ctx, groupID, 0, int(gi.Size)); err != nil {
			return st, err
		}
	} else {
		st.GroupInfo = gi.data
	}
	ms, err := s.members(ctx, groupID, nil)
	if err != nil {
		return st, err
	}
	st.Epoch = h.Epoch
	for _, m := range ms {
		if m.Left == 0 {
			st.Members = append(st.Members, m.addr)
		}
	}
	return st, nil
}

// readGroupInfo reads n bytes at offset of the group's GroupInfo. A
// large one's parts are deleted once a commit replaced it: a read that
// finds them gone reads the new head's.
func (s *Store) readGroupInfo(ctx context.Context, groupID []byte, offset uint64, n int) ([]byte, uint64, uint64, error) {
	for try := 0; ; try++ {
		h, _, found, err := s.loadHead(ctx, groupID)
		if err != nil {
			return nil, 0, 0, err
		}
		if !found {
			return nil, 0, 0, fmt.Errorf("%w: group", relay.ErrNotFound)
		}
		b := h.groupInfo()
		if offset > b.Size {
			return nil, 0, 0, fmt.Errorf("%w: offset past the end", relay.ErrBadRequest)
		}
		data, err := s.readBody(ctx, b, offset, n)
		if errors.Is(err, relay.ErrNotFound) && try < 3 {
			continue // replaced meanwhile
		}
		if err != nil {
			return nil, 0, 0, err
		}
		return data, b.Size, h.Epoch, nil
	}
}
