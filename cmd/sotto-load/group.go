package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"sotto/client/groups"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/internal/orgtest"
	"sotto/mls"
	"sotto/signal/keys"
	"sotto/wire"
)

// Group mode (issue 14): one relay build, measured in one run:
//
//  1. the 1:1 delivered rate: every member device sends SendMessage to
//     the next one back to back for -duration, receivers ack;
//  2. the time to create a group of -members devices (the creator's real
//     client/groups: fetch every KeyPackage, check every credential,
//     commit, upload in parts) and for -sample real members to join
//     from the Welcome (read in parts, every leaf checked);
//  3. the group delivered rate: the creator sends back to back for
//     -duration, each message stored once, and every simulated member
//     takes in the messages the GroupWaiting pushes carry (fetching when
//     one does not follow what it has) and acks once per wake-up;
//  4. the time to add -add more devices, and for a sample member to
//     process that commit; the sample members then decrypt everything.
//
// Simulated members enroll with real identity keys and upload one
// org-certified KeyPackage each (whose private keys nobody keeps): the
// creator checks them as any client would. They fetch and ack without
// decrypting.

// GroupConfig configures group mode.
type GroupConfig struct {
	Config
	Members int // devices in the group at creation, the creator included
	Add     int // devices added afterwards
	Sample  int // real members (client/groups) that join and decrypt
	Senders int // simulated members sending opaque group messages in the delivery phase
	Real    int // messages the creator's real client sends (encrypted, checked by the sample)
}

func groupMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg := GroupConfig{Config: Config{Prefix: fmt.Sprintf("grp%d", time.Now().Unix()%100000), Parallel: 32, Size: 300,
		Duration: 10 * time.Second, AckBatch: 64, Messages: 1, Timeout: time.Minute}, Members: 1000, Add: 100, Sample: 3, Senders: 10, Real: 20}
	fs := flag.NewFlagSet("sotto-load group", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Relay, "relay", "ws://127.0.0.1:8080", "relay URL")
	fs.StringVar(&cfg.Data, "data", "", "the relay's data directory (sottod serve -data): its store, and the default place of -org-key")
	fs.StringVar(&cfg.OrgKey, "org-key", "", "sotto-load's organization key file, created if missing (default: DIR/"+orgKeyFileName+" of -data)")
	fs.StringVar(&cfg.Store, "store", "sqlite", "the relay's store: sqlite (in -data) or postgres")
	fs.StringVar(&cfg.PostgresURL, "postgres-url", "", "with -store postgres: the relay's database URL")
	fs.StringVar(&cfg.PGSchema, "postgres-schema", "", "with -store postgres: the relay's schema")
	fs.StringVar(&cfg.Prefix, "prefix", cfg.Prefix, "username prefix (must be new on this relay)")
	fs.IntVar(&cfg.Parallel, "parallel", cfg.Parallel, "concurrent enrollments")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "text bytes of each message")
	fs.IntVar(&cfg.Members, "members", cfg.Members, "devices in the group at creation, the creator included")
	fs.IntVar(&cfg.Add, "add", cfg.Add, "devices added to the group afterwards")
	fs.IntVar(&cfg.Sample, "sample", cfg.Sample, "members that are real clients: they join from the Welcome and decrypt")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of each delivery phase (1:1, then group)")
	fs.IntVar(&cfg.Senders, "senders", cfg.Senders, "simulated members sending to the group back to back in the group delivery phase (opaque payloads: the relay cannot tell)")
	fs.IntVar(&cfg.Real, "real", cfg.Real, "messages the creator's real client encrypts and sends first (its own rate is reported; the sample members must decrypt them)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg.Devices = cfg.Members + cfg.Add
	var errs []error
	if cfg.Members < 2+cfg.Sample+cfg.Senders || cfg.Sample < 1 || cfg.Add < 0 || cfg.Senders < 1 || cfg.Real < 0 {
		errs = append(errs, errors.New("-members must exceed -sample + -senders + 1, -sample and -senders be at least 1, -add and -real not negative"))
	}
	if err := cfg.Config.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(stderr, "sotto-load: invalid configuration:\n%v\n", err)
		return 2
	}
	if err := groupLoad(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "sotto-load: %v\n", err)
		return 1
	}
	return 0
}

// gdev is a device of group mode on the real client transport.
type gdev struct {
	name string
	id   uint32
	key  ed25519.PrivateKey
	self groups.Self
	conn *transport.Conn
	m    *groups.Manager // the creator's and the sample members'; nil for simulated ones
}

const groupRegID = 7

// enrollGroupDevice enrolls seat's user with a real identity key and
// logs it in on a new connection.
func enrollGroupDevice(ctx context.Context, cfg GroupConfig, seat *orgtest.Seat, orgKey ed25519.PublicKey) (*gdev, error) {
	ik, err := keys.GenerateIdentityKeyPair(rand.Reader)
	if err != nil {
		return nil, err
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	ikPub := ik.PublicKey().Serialize()
	cert := seat.Certify(ikPub)
	var resp *wire.EnrollResponse
	for attempt := 0; ; attempt++ {
		c, err := transport.Dial(ctx, cfg.Relay, transport.Options{})
		if err != nil {
			return nil, err
		}
		resp, err = c.Enroll(ctx, &wire.EnrollRequest{ActivationCode: seat.Code, Username: seat.Username, IdentityKey: ikPub,
			IdentityCertificate: cert, RegistrationId: groupRegID, DeviceName: "sotto-load",
			Prekeys: &wire.PreKeys{
				SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: randBytes(33), Signature: randBytes(64)},
				LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: randBytes(1569), Signature: randBytes(64)},
			}}, key)
		c.Close()
		if transport.Code(err) == wire.ErrorCode_RATE_LIMITED && attempt < 20 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("enroll %s: %w", seat.Username, err)
		}
		break
	}
	d := &gdev{name: seat.Username, id: resp.DeviceId, key: key,
		self: groups.Self{Username: seat.Username, DeviceID: resp.DeviceId, Identity: ik, Certificate: cert, OrgKey: orgKey}}
	if d.conn, err = transport.Dial(ctx, cfg.Relay, transport.Options{}); err != nil {
		return nil, err
	}
	if _, err := d.conn.Authenticate(ctx, d.name, d.id, key); err != nil {
		d.conn.Close()
		return nil, fmt.Errorf("login %s: %w", d.name, err)
	}
	return d, nil
}

// simulateKeyPackage uploads one org-certified KeyPackage of d.
func simulateKeyPackage(ctx context.Context, d *gdev) error {
	seed, err := mls.GenerateSignatureKey(groups.Suite)
	if err != nil {
		return err
	}
	id, err := groups.NewIdentity(&d.self, ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	kp, err := groups.NewKeyPackage(id, seed)
	if err != nil {
		return err
	}
	return d.conn.UploadKeyPackages(ctx, [][]byte{kp}, nil)
}

// realClient gives d a client/groups Manager on a store in dir.
func realClient(ctx context.Context, d *gdev, dir string) error {
	db, err := store.Create(ctx, filepath.Join(dir, d.name), []byte("load"),
		&store.Options{KDF: store.KDFParams{Time: 1, MemoryKiB: 64, Threads: 1}, MinPassphraseBits: store.NoPassphrasePolicy})
	if err != nil {
		return err
	}
	d.m = groups.New(func() (groups.Relay, error) { return d.conn, nil }, db, d.self, groups.Options{})
	_, err = d.m.RefillKeyPackages(ctx)
	return err
}

func groupLoad(ctx context.Context, cfg GroupConfig, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seats, err := inviteDevices(ctx, cfg.Config, out)
	if err != nil {
		return err
	}
	orgKey, err := loadOrgKey(orgKeyPath(cfg.Config))
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "sotto-load-group-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	start := time.Now()
	devs := make([]*gdev, len(seats))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(cfg.Parallel)
	for i, seat := range seats {
		eg.Go(func() error {
			d, err := enrollGroupDevice(ectx, cfg, seat, orgKey.Public().(ed25519.PublicKey))
			if err != nil {
				return err
			}
			devs[i] = d
			if i <= cfg.Sample {
				return realClient(ectx, d, dir)
			}
			return simulateKeyPackage(ectx, d)
		})
	}
	err = eg.Wait()
	defer func() {
		for _, d := range devs {
			if d != nil {
				d.conn.Close()
			}
		}
	}()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "enrolled %d devices (%d real clients) in %v\n", len(devs), cfg.Sample+1, time.Since(start).Round(time.Millisecond))
	members, added := devs[:cfg.Members], devs[cfg.Members:]
	creator, sample := members[0], members[1:1+cfg.Sample]

	// 1. The 1:1 delivered rate of the same relay.
	oneRate, err := oneToOne(ctx, cfg, members)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "1:1: %.0f messages delivered per second (%d devices, each sending to the next back to back, %v)\n", oneRate, len(members), cfg.Duration)

	// 2. Create the group; the sample members join.
	var users []string
	for _, d := range members[1:] {
		users = append(users, d.name)
	}
	t0 := time.Now()
	id, err := creator.m.Create(ctx, "load", users...)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	tCreate := time.Since(t0)
	joins, err := syncAll(ctx, sample)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "create a group of %d devices: %v (creator: fetch %d KeyPackages, check them, commit, send); then a member joins in %v (slowest of %d)\n",
		cfg.Members, tCreate.Round(time.Millisecond), cfg.Members-1, joins.Round(time.Millisecond), len(sample))

	// 3. The creator's real client sends (encrypts, stores, sends);
	// then the relay's group delivered rate, with opaque payloads sent
	// by simulated members back to back.
	text := strings.Repeat("x", cfg.Size)
	t0 = time.Now()
	for range cfg.Real {
		if _, err := creator.m.Send(ctx, id, text); err != nil {
			return fmt.Errorf("group send: %w", err)
		}
	}
	if cfg.Real > 0 {
		fmt.Fprintf(out, "the creator's client sent %d messages to the group of %d at %.1f/s (encrypt, keep, send: one at a time)\n",
			cfg.Real, cfg.Members, float64(cfg.Real)/time.Since(t0).Seconds())
	}
	sim := members[1+cfg.Sample:]
	gRate, sent, err := groupDeliveries(ctx, cfg, id, sim)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "group: %.0f deliveries per second (%d messages from %d senders back to back, each to the %d other member devices, %v): %.1fx the 1:1 rate\n",
		gRate, sent, cfg.Senders, len(sim)-1, cfg.Duration, gRate/oneRate)

	// 4. Add more devices; a sample member processes the commit.
	if len(added) > 0 {
		users = users[:0]
		for _, d := range added {
			users = append(users, d.name)
		}
		t0 = time.Now()
		if err := creator.m.Add(ctx, id, users...); err != nil {
			return fmt.Errorf("add: %w", err)
		}
		tAdd := time.Since(t0)
		fmt.Fprintf(out, "add %d devices to the group of %d: %v (creator)\n", len(added), cfg.Members, tAdd.Round(time.Millisecond))
	}
	// Every sample member decrypts everything that was sent, and
	// processes the add.
	t0 = time.Now()
	var got atomic.Int64
	var eg2 errgroup.Group
	for _, d := range sample {
		eg2.Go(func() error {
			msgs, err := d.m.Sync(ctx)
			got.Add(int64(len(msgs)))
			return err
		})
	}
	if err := eg2.Wait(); err != nil {
		return err
	}
	if want := int64(cfg.Real * len(sample)); got.Load() != want {
		return fmt.Errorf("the sample members decrypted %d group messages, want %d", got.Load(), want)
	}
	info, err := sample[0].m.Info(ctx, id)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sample members decrypted the creator's %d messages (and dropped the %d opaque ones) and processed the add in %v; the group has %d devices at epoch %d\n",
		cfg.Real, sent, time.Since(t0).Round(time.Millisecond), len(info.Members), info.Epoch)
	return nil
}

// syncAll syncs the devices at once and returns the slowest time.
func syncAll(ctx context.Context, ds []*gdev) (time.Duration, error) {
	var mu sync.Mutex
	var slowest time.Duration
	var eg errgroup.Group
	for _, d := range ds {
		eg.Go(func() error {
			t0 := time.Now()
			if _, err := d.m.Sync(ctx); err != nil {
				return fmt.Errorf("%s: sync: %w", d.name, err)
			}
			mu.Lock()
			slowest = max(slowest, time.Since(t0))
			mu.Unlock()
			return nil
		})
	}
	return slowest, eg.Wait()
}

// oneToOne has every device send to the next back to back for the
// duration, and returns the messages delivered (and acked) per second.
func oneToOne(ctx context.Context, cfg GroupConfig, ds []*gdev) (float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var delivered atomic.Int64
	var readers sync.WaitGroup
	for _, d := range ds {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-ctx.Done():
					return
				case e := <-d.conn.Envelopes():
					ids := [][]byte{e.Id}
				more:
					for len(ids) < cfg.AckBatch {
						select {
						case e := <-d.conn.Envelopes():
							ids = append(ids, e.Id)
						default:
							break more
						}
					}
					if d.conn.Ack(ctx, ids...) == nil {
						delivered.Add(int64(len(ids)))
					}
				}
			}
		}()
	}
	payload := []byte(strings.Repeat("x", cfg.Size))
	stop := time.Now().Add(cfg.Duration)
	start := time.Now()
	var eg errgroup.Group
	for i, d := range ds {
		to := ds[(i+1)%len(ds)]
		eg.Go(func() error {
			for n := 0; time.Now().Before(stop); n++ {
				_, err := d.conn.SendMessage(ctx, &wire.SendMessageRequest{Recipient: to.name, MessageId: fmt.Appendf(nil, "%s-%d", d.name, n),
					Messages: []*wire.OutgoingMessage{{DeviceId: to.id, RegistrationId: groupRegID, Type: 1, Content: payload}}})
				if err != nil {
					return fmt.Errorf("1:1 send: %w", err)
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return 0, err
	}
	// What was sent is delivered within a few seconds.
	for last, deadline := int64(-1), time.Now().Add(15*time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		n := delivered.Load()
		if n == last {
			break
		}
		last = n
	}
	elapsed := time.Since(start)
	cancel()
	readers.Wait()
	return float64(delivered.Load()) / elapsed.Seconds(), nil
}

// groupDeliveries has cfg.Senders of the simulated members send opaque
// payloads to the group back to back for the duration while every
// simulated member takes in what each GroupWaiting push carries, or fetches, and acks; it
// returns the deliveries per second (messages fetched by members) and
// the messages sent.
func groupDeliveries(ctx context.Context, cfg GroupConfig, id []byte, sim []*gdev) (float64, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var delivered atomic.Int64
	var measuring atomic.Bool
	recvs := make([]*groupReceiver, len(sim))
	for i, d := range sim {
		recvs[i] = &groupReceiver{d: d, own: []byte(d.name + "-"), last: map[string]uint64{}, pending: map[string]uint64{}, count: func(n int) {
			if measuring.Load() {
				delivered.Add(int64(n))
			}
		}}
	}
	// The Welcome and the real messages first, outside the measurement.
	var fetchers errgroup.Group
	fetchers.SetLimit(64)
	for _, r := range recvs {
		fetchers.Go(func() error { return r.fetch(ctx) })
	}
	if err := fetchers.Wait(); err != nil {
		return 0, 0, fmt.Errorf("fetching the Welcome: %w", err)
	}
	measuring.Store(true)
	var loops sync.WaitGroup
	for _, r := range recvs {
		loops.Add(1)
		go func() {
			defer loops.Done()
			r.run(ctx)
		}()
	}
	var sent atomic.Int64
	start := time.Now()
	stop := start.Add(cfg.Duration)
	var senders errgroup.Group
	for _, d := range sim[:cfg.Senders] {
		senders.Go(func() error {
			for n := 0; time.Now().Before(stop); n++ {
				// The payload starts with the sender's name, so that a
				// sender does not count its own message.
				payload := fmt.Appendf(nil, "%s-%d-", d.name, n)
				payload = append(payload, strings.Repeat("x", max(0, cfg.Size-len(payload)))...)
				if _, err := d.conn.GroupSend(ctx, &wire.GroupSendRequest{GroupId: id, MessageId: fmt.Appendf(nil, "%s-%d", d.name, n), Content: payload}); err != nil {
					return fmt.Errorf("group send: %w", err)
				}
				sent.Add(1)
			}
			return nil
		})
	}
	if err := senders.Wait(); err != nil {
		return 0, 0, err
	}
	want := sent.Load() * int64(len(sim)-1)
	for deadline := time.Now().Add(60 * time.Second); delivered.Load() < want && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cancel()
	loops.Wait()
	if n := delivered.Load(); n != want {
		return 0, 0, fmt.Errorf("group: %d deliveries of %d messages to %d devices, want %d", n, sent.Load(), len(sim)-1, want)
	}
	return float64(want) / elapsed.Seconds(), int(sent.Load()), nil
}

// groupReceiver is a simulated member's receiving side: it takes in the
// messages the relay's pushes carry when they follow what it has (their
// prev_seq is the last seq it took in of that group), fetches otherwise,
// and acks what it took in lazily, as a real client does (client/groups):
// once groupAckBatch messages wait or groupAckDelay after the first.
type groupReceiver struct {
	d       *gdev
	own     []byte            // the prefix of this device's own payloads
	last    map[string]uint64 // per group, the last seq taken in
	pending map[string]uint64 // per group, the last seq taken in but not acked
	waiting int               // deliveries (of the others' messages) not acked
	count   func(int)         // deliveries acked
}

// take takes in m unless it was taken in before.
func (r *groupReceiver) take(m *wire.GroupMessage) {
	g := string(m.GroupId)
	if last, ok := r.last[g]; ok && m.Seq <= last {
		return
	}
	r.last[g], r.pending[g] = m.Seq, m.Seq
	if m.Kind == wire.GroupMessageKind_GROUP_MESSAGE && len(m.Content) > 0 && !bytes.HasPrefix(m.Content, r.own) {
		r.waiting++
	}
}

// run handles the device's wake-ups until ctx ends.
func (r *groupReceiver) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			armed = false
			if r.ack(ctx) != nil && ctx.Err() != nil {
				return
			}
		case <-r.d.conn.GroupWaiting():
			if r.woken(ctx) != nil && ctx.Err() != nil {
				return
			}
			if len(r.pending) > 0 && !armed {
				timer.Reset(groupAckDelay)
				armed = true
			}
		}
	}
}

// The simulated members' lazy acks (client/groups: ackBatch, ackDelay).
const (
	groupAckBatch = 64
	groupAckDelay = 200 * time.Millisecond
)

// woken handles a GroupWaiting signal.
func (r *groupReceiver) woken(ctx context.Context) error {
	msgs, ok := r.d.conn.GroupPushed()
	if !ok {
		return r.fetch(ctx)
	}
	gap := false
	for _, m := range msgs {
		last, known := r.last[string(m.GroupId)]
		switch {
		case known && m.Seq <= last:
			// Taken in by a fetch already.
		case known && m.PrevSeq != 0 && m.PrevSeq == last:
			r.take(m) // (its own without content: not counted)
		default:
			gap = true
		}
	}
	if gap {
		return r.fetch(ctx)
	}
	if r.waiting >= groupAckBatch {
		return r.ack(ctx)
	}
	return nil
}

// ack acks what was taken in.
func (r *groupReceiver) ack(ctx context.Context) error {
	if len(r.pending) == 0 {
		return nil
	}
	var acks []*wire.GroupAck
	for g, s := range r.pending {
		acks = append(acks, &wire.GroupAck{GroupId: []byte(g), Seq: s})
	}
	if err := r.d.conn.GroupAck(ctx, acks); err != nil {
		return err
	}
	clear(r.pending)
	r.count(r.waiting)
	r.waiting = 0
	return nil
}

// fetch fetches and acks until the relay holds nothing more.
func (r *groupReceiver) fetch(ctx context.Context) error {
	for {
		resp, err := r.d.conn.GroupFetch(ctx, 0)
		if err != nil {
			return err
		}
		for _, m := range resp.Messages {
			r.take(m)
			// A fetched message is acked even if taken in before.
			r.pending[string(m.GroupId)] = max(r.pending[string(m.GroupId)], m.Seq)
		}
		if err := r.ack(ctx); err != nil {
			return err
		}
		if !resp.More {
			return nil
		}
	}
}
