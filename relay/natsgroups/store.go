package natsgroups

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"sotto/relay"
)

// Options names the bucket and stream.
type Options struct {
	Bucket   string // key-value bucket ("sotto_groups")
	Stream   string // KeyPackages and large contents ("SOTTO_GROUPS")
	Subjects string // the stream's subject prefix ("sotto.grp")
	Replicas int    // bucket and stream replicas (1)
}

func (o *Options) defaults() {
	if o.Bucket == "" {
		o.Bucket = "sotto_groups"
	}
	if o.Stream == "" {
		o.Stream = "SOTTO_GROUPS"
	}
	if o.Subjects == "" {
		o.Subjects = "sotto.grp"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
}

// Store implements relay.GroupStore on JetStream.
type Store struct {
	opts   Options
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	kvs    jetstream.Stream // the bucket's stream, to remove records without leaving markers
	stream jetstream.Stream
	part   int // bytes per part of a large content
	closed atomic.Bool
	// crashAfterCommit, set by tests, ends a commit or send right after
	// its commit point, as a crash there would.
	crashAfterCommit func() error
}

var _ relay.GroupStore = (*Store)(nil)

// Open creates (or updates) the bucket and stream on nc. The caller owns
// nc.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Store, error) {
	opts.defaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("natsgroups: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:   opts.Bucket,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsgroups: bucket: %w", err)
	}
	kvs, err := js.Stream(ctx, "KV_"+opts.Bucket)
	if err != nil {
		return nil, fmt.Errorf("natsgroups: bucket stream: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      opts.Stream,
		Subjects:  []string{opts.Subjects + ".>"},
		Retention: jetstream.LimitsPolicy,
		Storage:   jetstream.FileStorage,
		Replicas:  opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("natsgroups: stream: %w", err)
	}
	// A part, with its headers, must fit in the server's max_payload.
	part := min(256<<10, int(nc.MaxPayload())/2)
	if part < 4<<10 {
		return nil, fmt.Errorf("natsgroups: the server's max_payload (%d) is too small", nc.MaxPayload())
	}
	return &Store{opts: opts, js: js, kv: kv, kvs: kvs, stream: st, part: part}, nil
}

// Close makes further calls fail with relay.ErrClosed.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *Store) live() error {
	if s.closed.Load() {
		return relay.ErrClosed
	}
	return nil
}

// Keys. A group id is any bytes: its key token is "x" and its hex (hex
// keeps the byte order of ids, so listings come sorted by group).
func gtok(gid []byte) string    { return "x" + hex.EncodeToString(gid) }
func headKey(gid []byte) string { return "g." + gtok(gid) }
func msgKey(gid []byte, seq uint64) string {
	return "m." + gtok(gid) + "." + strconv.FormatUint(seq, 10)
}
func memberKey(gid []byte, d relay.DeviceAddr) string {
	return "mem." + gtok(gid) + "." + d.String()
}
func indexKey(d relay.DeviceAddr, gid []byte) string { return "dg." + d.String() + "." + gtok(gid) }
func epochKey(gid []byte, epoch uint64) string {
	return "e." + gtok(gid) + "." + strconv.FormatUint(epoch, 10)
}
func lastResortKey(d relay.DeviceAddr) string { return "lr." + d.String() }

// sendKey is the idempotence record of (sender, message id) in a group.
func sendKey(gid []byte, sender relay.DeviceAddr, msgID []byte) string {
	h := sha256.New()
	h.Write(sender.Account[:])
	binary.Write(h, binary.BigEndian, sender.Device)
	h.Write(msgID)
	return "s." + gtok(gid) + "." + hex.EncodeToString(h.Sum(nil)[:20])
}

func parseGroupToken(tok string) ([]byte, error) {
	if !strings.HasPrefix(tok, "x") {
		return nil, fmt.Errorf("natsgroups: bad group key %q", tok)
	}
	return hex.DecodeString(tok[1:])
}

// conflict reports a lost compare-and-set.
func conflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

func notFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

// getJSON reads key into v; found false when absent.
func (s *Store) getJSON(ctx context.Context, key string, v any) (rev uint64, found bool, err error) {
	e, err := s.kv.Get(ctx, key)
	if notFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("natsgroups: get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, false, fmt.Errorf("natsgroups: bad record %s: %w", key, err)
	}
	return e.Revision(), true, nil
}

// setJSON writes v at key if its revision is still rev (found false:
// if the key is absent).
func (s *Store) setJSON(ctx context.Context, key string, v any, rev uint64, found bool) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.set(ctx, key, b, rev, found)
}

func (s *Store) set(ctx context.Context, key string, b []byte, rev uint64, found bool) error {
	var err error
	if found {
		_, err = s.kv.Update(ctx, key, b, rev)
	} else {
		_, err = s.kv.Create(ctx, key, b)
	}
	return err
}

// remove deletes key's record from the bucket's stream by purging its
// subject, leaving no marker (a KV delete or purge would leave one for
// good); false when there was none.
func (s *Store) remove(ctx context.Context, key string) (bool, error) {
	if _, err := s.kv.Get(ctx, key); notFound(err) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if err := s.kvs.Purge(ctx, jetstream.WithPurgeSubject("$KV."+s.opts.Bucket+"."+key)); err != nil {
		return false, err
	}
	return true, nil
}

// watchValues returns the current entries under filter (a KV wildcard),
// through one ordered consumer.
func (s *Store) watchValues(ctx context.Context, filter string) ([]jetstream.KeyValueEntry, error) {
	w, err := s.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("natsgroups: list %s: %w", filter, err)
	}
	defer w.Stop()
	var out []jetstream.KeyValueEntry
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("natsgroups: list %s: watcher ended", filter)
			}
			if e == nil { // the initial values are all delivered
				return out, nil
			}
			out = append(out, e)
		}
	}
}

// listKeys returns the keys under filter.
func (s *Store) listKeys(ctx context.Context, filter string) ([]string, error) {
	l, err := s.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("natsgroups: list %s: %w", filter, err)
	}
	defer l.Stop()
	var out []string
	for k := range l.Keys() {
		out = append(out, k)
	}
	return out, nil
}

// Large contents: parts of one blob on <prefix>.blob.<id>.<n>.

// body is a stored content: inline, or a blob of Size bytes.
type body struct {
	Blob string `json:"b,omitempty"`
	Size uint64 `json:"n"`
	data []byte // inline (Blob == "")
}

func (s *Store) blobSubject(id string, n int) string {
	return s.opts.Subjects + ".blob." + id + "." + strconv.Itoa(n)
}

// putBody stores b inline when small, else as a blob in parts.
func (s *Store) putBody(ctx context.Context, b []byte) (body, error) {
	if len(b) <= relay.GroupInlineMax {
		return body{Size: uint64(len(b)), data: b}, nil
	}
	var r [16]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	for n, off := 0, 0; off < len(b); n, off = n+1, off+s.part {
		if _, err := s.js.Publish(ctx, s.blobSubject(id, n), b[off:min(off+s.part, len(b))]); err != nil {
			s.dropBody(ctx, body{Blob: id})
			return body{}, fmt.Errorf("natsgroups: store a large content: %w", err)
		}
	}
	return body{Blob: id, Size: uint64(len(b))}, nil
}

// dropBody deletes a blob's parts (best effort: what is left leaks).
func (s *Store) dropBody(ctx context.Context, b body) {
	if b.Blob != "" {
		s.stream.Purge(context.WithoutCancel(ctx), jetstream.WithPurgeSubject(s.opts.Subjects+".blob."+b.Blob+".>"))
	}
}

// readBody returns n bytes of b at offset (offset <= b.Size).
func (s *Store) readBody(ctx context.Context, b body, offset uint64, n int) ([]byte, error) {
	end := min(b.Size, offset+uint64(max(n, 0)))
	if b.Blob == "" {
		return bytes.Clone(b.data[offset:end]), nil
	}
	out := []byte{}
	for off := offset; off < end; {
		part := int(off / uint64(s.part))
		m, err := s.stream.GetLastMsgForSubject(ctx, s.blobSubject(b.Blob, part))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, fmt.Errorf("%w: part of a large content", relay.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("natsgroups: read a large content: %w", err)
		}
		in := off - uint64(part*s.part)
		if in > uint64(len(m.Data)) {
			return nil, fmt.Errorf("natsgroups: large content %s: short part", b.Blob)
		}
		take := min(uint64(len(m.Data))-in, end-off)
		out = append(out, m.Data[in:in+take]...)
		off += take
		if take == 0 {
			return nil, fmt.Errorf("natsgroups: large content %s: short part", b.Blob)
		}
	}
	return out, nil
}

// whole returns all of b.
func (s *Store) whole(ctx context.Context, b body) ([]byte, error) {
	return s.readBody(ctx, b, 0, int(b.Size))
}

// KeyPackages: one-time ones on <prefix>.kp.<account>.<device>, the last
// resort one in the bucket.

func (s *Store) kpSubject(d relay.DeviceAddr) string { return s.opts.Subjects + ".kp." + d.String() }

// StoreKeyPackages implements relay.GroupStore.
func (s *Store) StoreKeyPackages(ctx context.Context, dev relay.DeviceAddr, oneTime [][]byte, lastResort []byte) error {
	if err := s.live(); err != nil {
		return err
	}
	for _, kp := range oneTime {
		if _, err := s.js.Publish(ctx, s.kpSubject(dev), kp); err != nil {
			return fmt.Errorf("natsgroups: store key package: %w", err)
		}
	}
	if lastResort != nil {
		if _, err := s.kv.Put(ctx, lastResortKey(dev), lastResort); err != nil {
			return fmt.Errorf("natsgroups: store last resort key package: %w", err)
		}
	}
	return nil
}

// CountKeyPackages implements relay.GroupStore.
func (s *Store) CountKeyPackages(ctx context.Context, dev relay.DeviceAddr) (relay.KeyPackageCount, error) {
	var c relay.KeyPackageCount
	if err := s.live(); err != nil {
		return c, err
	}
	subj := s.kpSubject(dev)
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return c, fmt.Errorf("natsgroups: count key packages: %w", err)
	}
	c.OneTime = int(info.State.Subjects[subj])
	_, err = s.kv.Get(ctx, lastResortKey(dev))
	switch {
	case err == nil:
		c.HasLastResort = true
	case !notFound(err):
		return c, fmt.Errorf("natsgroups: count key packages: %w", err)
	}
	return c, nil
}

// TakeKeyPackage implements relay.GroupStore: the oldest one-time
// KeyPackage is the caller's only if its delete succeeds (a concurrent
// taker's delete of the same message fails), else it takes the next.
func (s *Store) TakeKeyPackage(ctx context.Context, dev relay.DeviceAddr) ([]byte, bool, error) {
	if err := s.live(); err != nil {
		return nil, false, err
	}
	for seq := uint64(1); ; {
		m, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(s.kpSubject(dev)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("natsgroups: take key package: %w", err)
		}
		err = s.stream.DeleteMsg(ctx, m.Sequence)
		if err == nil {
			return m.Data, false, nil
		}
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil, false, fmt.Errorf("natsgroups: take key package: %w", err)
		}
		seq = m.Sequence + 1 // taken by another
	}
	e, err := s.kv.Get(ctx, lastResortKey(dev))
	if notFound(err) {
		return nil, false, relay.ErrNotFound
	}
	if err != nil {
		return nil, false, fmt.Errorf("natsgroups: take key package: %w", err)
	}
	return e.Value(), true, nil
}
