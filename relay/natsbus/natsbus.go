// Package natsbus is the relay's Bus over NATS core subjects, so that
// several relay nodes wake each other's connections.
//
// Each device with a connection on this node has one NATS subscription
// on sotto.dev.<account hex>.<device> (shared by the node's connections
// of that device). Notify delivers to this node's subscribers directly,
// with the envelopes (as relay.LocalBus does), and publishes an empty
// wake-up on the subject for the other nodes, marked with this node's id
// so that it ignores its own.
//
// Envelopes are not carried over NATS: subscribers on other nodes get
// nil, meaning "look in the mailbox". The mailbox is the truth and is
// already durable when Notify runs; carrying the ciphertext would copy
// up to a whole message per recipient through NATS to save one indexed
// read, and a lost NATS message (core NATS is at-most-once) would then
// matter less clearly. A lost wake-up delays delivery until the device's
// next fetch (reconnect or the next wake-up), it loses nothing.
package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"sotto/relay"
)

// hdrNode carries the publishing node's id.
const hdrNode = "Sotto-Node"

// DefaultPrefix is the subject prefix.
const DefaultPrefix = "sotto.dev"

// Bus implements relay.Bus on a NATS connection.
type Bus struct {
	nc     *nats.Conn
	log    *slog.Logger
	prefix string
	node   string
	local  *relay.LocalBus

	mu   sync.Mutex
	subs map[relay.DeviceAddr]*devSub
}

type devSub struct {
	refs int
	sub  *nats.Subscription
}

var _ relay.Bus = (*Bus)(nil)

// Options tunes New.
type Options struct {
	// Prefix of the subjects (DefaultPrefix); nodes that talk to each
	// other must use the same.
	Prefix string
}

// New returns a bus on nc; the caller owns nc (and closes it after the
// relay server has stopped).
func New(nc *nats.Conn, log *slog.Logger, opts Options) *Bus {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	var id [8]byte
	rand.Read(id[:])
	return &Bus{
		nc: nc, log: log, prefix: opts.Prefix, node: hex.EncodeToString(id[:]),
		local: relay.NewLocalBus(),
		subs:  make(map[relay.DeviceAddr]*devSub),
	}
}

// Connect dials the NATS server at url with reconnects forever (a relay
// node keeps serving its own connections while NATS is away).
func Connect(url string, log *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name("sottod"),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("natsbus: disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("natsbus: reconnected", "server", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	return nc, nil
}

// Subject returns the subject of dev.
func (b *Bus) Subject(dev relay.DeviceAddr) string {
	return b.prefix + "." + dev.Account.String() + "." + strconv.FormatUint(uint64(dev.Device), 10)
}

// Subscribe implements relay.Bus.
func (b *Bus) Subscribe(dev relay.DeviceAddr, fn func(envs []relay.Envelope)) (cancel func()) {
	cancelLocal := b.local.Subscribe(dev, fn)
	b.mu.Lock()
	ds := b.subs[dev]
	if ds == nil {
		ds = &devSub{}
		sub, err := b.nc.Subscribe(b.Subject(dev), func(m *nats.Msg) {
			if m.Header.Get(hdrNode) == b.node {
				return
			}
			// nil: look in the mailbox.
			b.local.Notify(context.Background(), dev, nil)
		})
		if err != nil {
			// The device still gets this node's notifications and
			// whatever the mailbox holds when it fetches.
			b.log.Error("natsbus: subscribe", "dev", dev.String(), "err", err)
		}
		ds.sub = sub
		b.subs[dev] = ds
	}
	ds.refs++
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancelLocal()
			b.mu.Lock()
			defer b.mu.Unlock()
			ds.refs--
			if ds.refs > 0 {
				return
			}
			delete(b.subs, dev)
			if ds.sub != nil {
				if err := ds.sub.Unsubscribe(); err != nil && err != nats.ErrConnectionClosed {
					b.log.Warn("natsbus: unsubscribe", "dev", dev.String(), "err", err)
				}
			}
		})
	}
}

// Notify implements relay.Bus: this node's subscribers get envs, the
// other nodes' a wake-up. The publish is buffered by the NATS client
// (no round trip); an error means the connection is closed or its
// buffer is full.
func (b *Bus) Notify(ctx context.Context, dev relay.DeviceAddr, envs []relay.Envelope) error {
	b.local.Notify(ctx, dev, envs)
	m := &nats.Msg{Subject: b.Subject(dev), Header: nats.Header{hdrNode: []string{b.node}}}
	if err := b.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("natsbus: notify: %w", err)
	}
	return nil
}

// Flush waits until the server has processed everything published so
// far (for tests and orderly shutdown).
func (b *Bus) Flush(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natsbus: flush: %w", err)
	}
	return nil
}

var _ relay.GroupBus = (*Bus)(nil)

// groupSubject carries group wake-ups: one message per group message or
// commit, for all nodes (each wakes its own connected member devices from
// its member list), instead of one per member device. Outside the
// device subjects' prefix.<account>.<device> (prefix + "_groups" is one
// token longer at the end, not under prefix.>).
func (b *Bus) groupSubject() string { return b.prefix + "_groups" }

// NotifyGroup implements relay.GroupBus. The message is the sender's
// account (16 bytes) and device (4, big-endian), a commit flag byte, and
// the group id.
func (b *Bus) NotifyGroup(_ context.Context, group []byte, sender relay.DeviceAddr, commit bool) error {
	data := make([]byte, 0, 21+len(group))
	data = append(data, sender.Account[:]...)
	data = binary.BigEndian.AppendUint32(data, sender.Device)
	flag := byte(0)
	if commit {
		flag = 1
	}
	data = append(append(data, flag), group...)
	m := &nats.Msg{Subject: b.groupSubject(), Data: data, Header: nats.Header{hdrNode: []string{b.node}}}
	if err := b.nc.PublishMsg(m); err != nil {
		return fmt.Errorf("natsbus: notify group: %w", err)
	}
	return nil
}

// SubscribeGroups implements relay.GroupBus: other nodes' group
// wake-ups, well-formed ones only (a group id of 1 to relay.MaxGroupID
// bytes), reach fn.
func (b *Bus) SubscribeGroups(fn func(group []byte, sender relay.DeviceAddr, commit bool)) (cancel func()) {
	sub, err := b.nc.Subscribe(b.groupSubject(), func(m *nats.Msg) {
		if m.Header.Get(hdrNode) == b.node {
			return
		}
		group, sender, commit, ok := parseGroupWake(m.Data)
		if !ok {
			b.log.Warn("natsbus: malformed group wake-up", "bytes", len(m.Data))
			return
		}
		fn(group, sender, commit)
	})
	if err != nil {
		// Devices on other nodes fetch when they reconnect.
		b.log.Error("natsbus: subscribe to group wake-ups", "err", err)
		return func() {}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := sub.Unsubscribe(); err != nil && err != nats.ErrConnectionClosed {
				b.log.Warn("natsbus: unsubscribe group wake-ups", "err", err)
			}
		})
	}
}

// parseGroupWake decodes a NotifyGroup message.
func parseGroupWake(b []byte) (group []byte, sender relay.DeviceAddr, commit, ok bool) {
	if len(b) < 22 || len(b) > 21+relay.MaxGroupID || b[20] > 1 {
		return nil, sender, false, false
	}
	copy(sender.Account[:], b[:16])
	sender.Device = binary.BigEndian.Uint32(b[16:20])
	return append([]byte(nil), b[21:]...), sender, b[20] == 1, true
}
