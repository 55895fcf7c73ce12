package relay

import (
	"context"
	"sync"
)

// Bus carries "an envelope is waiting for device X" between the node that
// stored it and the node holding the device's connection.
type Bus interface {
	// Subscribe calls fn (which must not block) whenever dev is notified,
	// until cancel is called.
	Subscribe(dev DeviceAddr, fn func(envs []Envelope)) (cancel func())
	// Notify wakes the subscribers of dev. envs, when not nil, are the
	// envelopes just stored for dev (already durable, IDs complete), so
	// that an up-to-date connection can push them without reading the
	// mailbox; a bus that cannot carry them passes nil, meaning "look in
	// the mailbox".
	Notify(ctx context.Context, dev DeviceAddr, envs []Envelope) error
}

// LocalBus is the in-process Bus.
type LocalBus struct {
	mu   sync.RWMutex
	subs map[DeviceAddr][]*busSub // usually one
}

type busSub struct{ fn func([]Envelope) }

// NewLocalBus returns an empty in-process bus.
func NewLocalBus() *LocalBus {
	return &LocalBus{subs: make(map[DeviceAddr][]*busSub)}
}

// Subscribe implements Bus.
func (b *LocalBus) Subscribe(dev DeviceAddr, fn func([]Envelope)) func() {
	s := &busSub{fn: fn}
	b.mu.Lock()
	b.subs[dev] = append(b.subs[dev], s)
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		list := b.subs[dev]
		for i, x := range list {
			if x == s {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(b.subs, dev)
		} else {
			b.subs[dev] = list
		}
	}
}

// Notify implements Bus.
func (b *LocalBus) Notify(_ context.Context, dev DeviceAddr, envs []Envelope) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, s := range b.subs[dev] {
		s.fn(envs)
	}
	return nil
}

// GroupBus is a Bus that also carries group wake-ups between relay
// nodes (relay/natsbus): a group message or commit stored through one
// node wakes the member devices connected to the others. Optional: on a
// Bus without it, devices on other nodes fetch when they next connect.
type GroupBus interface {
	// NotifyGroup tells the other nodes that group has something new
	// for its member devices but sender; commit says its members may
	// have changed.
	NotifyGroup(ctx context.Context, group []byte, sender DeviceAddr, commit bool) error
	// SubscribeGroups calls fn (which may read the store, not block
	// long) for each other node's NotifyGroup, until cancel is called.
	SubscribeGroups(fn func(group []byte, sender DeviceAddr, commit bool)) (cancel func())
}
