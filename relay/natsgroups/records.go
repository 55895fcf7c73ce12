package natsgroups

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	"sotto/relay"
)

// entry is one group message. As the head's pending entry it carries
// what the commit changes (Create, External, Added, Removed); as a
// message record (m.<group>.<seq>) only what FetchGroups delivers.
type entry struct {
	Seq     uint64 `json:"s"`
	Kind    uint8  `json:"k"`
	Epoch   uint64 `json:"e,omitempty"`
	TS      int64  `json:"t"`
	Sender  []byte `json:"f"` // packed address
	MsgID   []byte `json:"i,omitempty"`
	Content body   `json:"c"`
	Welcome *body  `json:"w,omitempty"`

	Create   bool   `json:"cr,omitempty"` // the commit creating the group: Sender joins at 0
	External bool   `json:"x,omitempty"`
	Added    []byte `json:"a,omitempty"` // packed addresses
	Removed  []byte `json:"r,omitempty"`
}

const addrLen = 20

func packAddrs(ds []relay.DeviceAddr) []byte {
	out := make([]byte, 0, len(ds)*addrLen)
	for _, d := range ds {
		out = append(out, d.Account[:]...)
		out = binary.BigEndian.AppendUint32(out, d.Device)
	}
	return out
}

func unpackAddrs(b []byte) ([]relay.DeviceAddr, error) {
	if len(b)%addrLen != 0 {
		return nil, fmt.Errorf("natsgroups: bad address list")
	}
	out := make([]relay.DeviceAddr, len(b)/addrLen)
	for i := range out {
		copy(out[i].Account[:], b[i*addrLen:])
		out[i].Device = binary.BigEndian.Uint32(b[i*addrLen+16:])
	}
	return out, nil
}

func (e *entry) sender() (relay.DeviceAddr, error) {
	ds, err := unpackAddrs(e.Sender)
	if err != nil || len(ds) != 1 {
		return relay.DeviceAddr{}, fmt.Errorf("natsgroups: bad sender in entry %d", e.Seq)
	}
	return ds[0], nil
}

// encode writes e as a length-prefixed JSON head followed by the inline
// content and Welcome bytes, so that contents are stored as they are.
// full keeps the commit's changes (for the head).
func (e *entry) encode(full bool) []byte {
	m := *e
	if !full {
		m.Create, m.External, m.Added, m.Removed = false, false, nil, nil
	}
	meta, err := json.Marshal(&m)
	if err != nil {
		panic(err) // only plain fields
	}
	out := binary.AppendUvarint(nil, uint64(len(meta)))
	out = append(out, meta...)
	out = append(out, e.Content.data...)
	if e.Welcome != nil {
		out = append(out, e.Welcome.data...)
	}
	return out
}

func decodeEntry(b []byte) (*entry, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, fmt.Errorf("natsgroups: bad entry")
	}
	var e entry
	if err := json.Unmarshal(b[k:k+int(n)], &e); err != nil {
		return nil, fmt.Errorf("natsgroups: bad entry: %w", err)
	}
	rest := b[k+int(n):]
	take := func(bd *body) error {
		if bd.Blob != "" {
			return nil
		}
		if bd.Size > uint64(len(rest)) {
			return fmt.Errorf("natsgroups: entry %d: short content", e.Seq)
		}
		bd.data, rest = rest[:bd.Size:bd.Size], rest[bd.Size:]
		return nil
	}
	if err := take(&e.Content); err != nil {
		return nil, err
	}
	if e.Welcome != nil {
		if err := take(e.Welcome); err != nil {
			return nil, err
		}
	}
	return &e, nil
}

// head is a group's current state (g.<group>). Pending is the last
// accepted entry (at Next-1) in full: writing the head is the commit
// point of each commit and send.
type head struct {
	Epoch     uint64 `json:"e"`
	Next      uint64 `json:"n"`
	Created   int64  `json:"c"`
	GroupInfo body   `json:"gi"`
	Info      []byte `json:"gd,omitempty"` // the GroupInfo when inline
	Pending   []byte `json:"-"`            // encoded entry, stored after the JSON
}

// encode writes h as a length-prefixed JSON head followed by the
// pending entry as it is.
func (h *head) encode() []byte {
	meta, err := json.Marshal(h)
	if err != nil {
		panic(err) // only plain fields
	}
	out := binary.AppendUvarint(nil, uint64(len(meta)))
	return append(append(out, meta...), h.Pending...)
}

func decodeHead(b []byte) (*head, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, fmt.Errorf("natsgroups: bad head")
	}
	var h head
	if err := json.Unmarshal(b[k:k+int(n)], &h); err != nil {
		return nil, fmt.Errorf("natsgroups: bad head: %w", err)
	}
	if rest := b[k+int(n):]; len(rest) > 0 {
		h.Pending = rest
	}
	return &h, nil
}

func (h *head) groupInfo() body {
	b := h.GroupInfo
	if b.Blob == "" {
		b.data = h.Info
	}
	return b
}

// member is a device's record in a group (mem.<group>.<device>).
type member struct {
	Joined uint64 `json:"j"` // the commit that added it (its Welcome's place)
	Left   uint64 `json:"l"` // the commit that removed it (0: current)
	Acked  uint64 `json:"a"` // its cursor
	// Gone: a removed device forgotten by ExpireGroups (a tombstone
	// that keeps Joined, so that a late materialization of an older
	// add does not bring it back).
	Gone bool `json:"g,omitempty"`
}
