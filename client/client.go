package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"sotto/client/account"
	"sotto/client/conversation"
	"sotto/client/keylog"
	"sotto/client/sealedsender"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/session"
	"sotto/wire"
)

// Errors callers branch on.
var (
	ErrNotEnrolled  = account.ErrNotEnrolled
	ErrNotConnected = errors.New("client: not connected to the relay")
	ErrRevoked      = errors.New("client: this device was removed from its account")
	ErrExpired      = errors.New("client: the subscription has expired; history stays readable but sending is disabled")
	ErrNoDevices    = errors.New("client: the recipient has no devices")
)

// IdentityChangedError reports that a contact's identity key changed: nothing
// is sent to them until the user compares safety numbers and accepts the new
// key (Client.Verify).
type IdentityChangedError struct {
	User string
	key  []byte // the new key, when it still has to be recorded
}

func (e *IdentityChangedError) Error() string {
	return fmt.Sprintf("client: the safety number with %s changed; verify it, then accept the new key", e.User)
}

// minPassphraseBits is the effective passphrase minimum.
func (o *Options) minPassphraseBits() float64 {
	if o.MinPassphraseBits == 0 {
		return store.DefaultMinPassphraseBits
	}
	return o.MinPassphraseBits
}

// Options configure a Client.
type Options struct {
	Logger *slog.Logger // nil: discard
	// OnEvent receives events (messages, receipts, identity changes)
	// from the client's receive goroutine. It must not block for long.
	OnEvent func(Event)
	// KDF tunes the Argon2id parameters of a new store (Enroll, Link).
	KDF store.KDFParams
	// MinPassphraseBits is the passphrase policy of a new store (Enroll,
	// Link): as store.Options.MinPassphraseBits (zero: the store's
	// default; store.NoPassphrasePolicy: none). An organization's policy
	// may raise it.
	MinPassphraseBits float64
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// ExpiryInterval is how often disappearing messages are looked for;
	// zero: DefaultExpiryInterval.
	ExpiryInterval time.Duration
	// WitnessBound is how long a key log head may stay without a
	// cosignature of the pinned witness before the `unwitnessed` alarm
	// (client/keylog/witness.go); zero: DefaultWitnessBound.
	WitnessBound time.Duration
	// ReceiptDelayMin and ReceiptDelayMax bound the random delay before
	// delivery and read receipts are sent, batched per contact
	// (receipts.go); both zero: 1 to 10 s.
	ReceiptDelayMin, ReceiptDelayMax time.Duration
	// ReceiptWait waits for a drawn receipt delay d or until ctx ends;
	// nil: a timer. Tests replace it to see and release the delay.
	ReceiptWait func(ctx context.Context, d time.Duration) error
	// Transport is how every connection to the relay is made: the
	// WebSockets (authenticated and sealed), enrollment, and the HTTP
	// requests for attachment blobs. Its TLS roots, pin and plaintext rule
	// apply to all of them (transport.NewOptions builds it from a
	// device's settings). The zero value: the system's roots, plaintext
	// only on loopback.
	Transport transport.Options
	// NoGroupForkCheck turns off fork and withheld-commit detection in
	// group chats (client/groups/forkcheck.go): the red-team suite's
	// switch for those attacks, never set otherwise.
	NoGroupForkCheck bool
	// NoGroupQuarantine turns off the quarantine of a group whose commit
	// the device refused (client/groups/recover.go): the red-team
	// suite's switch for that attack, never set otherwise.
	NoGroupQuarantine bool
}

// Client is one enrolled device. Its methods are safe for concurrent use.
type Client struct {
	opts      Options
	relayHTTP *http.Client // for the relay's HTTP surface, under opts.Transport
	log       *slog.Logger
	db        *store.Store
	// acct is read for its fixed fields only (name, device, keys); the
	// prekey counters are read and written inside store transactions.
	acct     *account.Account
	identity *session.IdentityKeyPair

	// cryptoMu serializes every use of the Signal sessions (encrypt,
	// decrypt) and of the account record.
	cryptoMu sync.Mutex

	// mu guards the connection state below; it is never held across
	// network I/O (Connect).
	mu   sync.Mutex
	conn *transport.Conn
	// connecting is closed when the connection attempt under way ends;
	// abortConnect aborts it (Disconnect).
	connecting   chan struct{}
	abortConnect context.CancelCauseFunc
	// ownDevicesOn is the connection the own device list was last
	// fetched on (send.go).
	ownDevicesOn *transport.Conn
	expired      bool
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	idle         chan struct{}

	janitor  *janitor                   // deletes disappearing messages (disappear.go)
	receipts *conversation.ReceiptQueue // receipts waiting for their delay (receipts.go)
	keylog   *keylog.Log                // key transparency (transparency.go)
	sealed   *sealedsender.Sender       // sealed sender (sealed.go)

	handlers contentHandlers // the receive pipeline's, per content kind (pipeline.go)
	hooks    testHooks

	groupsMu sync.Mutex
	groups   groupsState // group chats (groups.go)
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.WitnessBound <= 0 {
		r.WitnessBound = DefaultWitnessBound
	}
	return r
}

// Open unlocks the store in dir and loads the account.
func Open(ctx context.Context, dir string, passphrase []byte, opts *Options) (*Client, error) {
	o := opts.withDefaults()
	db, err := store.Open(ctx, dir, passphrase)
	if err != nil {
		return nil, err
	}
	c, err := newClient(ctx, db, o)
	if err != nil {
		db.Close()
		return nil, err
	}
	return c, nil
}

func newClient(ctx context.Context, db *store.Store, o Options) (*Client, error) {
	acct, err := account.Load(ctx, db)
	if err != nil {
		return nil, err
	}
	id, err := session.ParseIdentityKeyPair(acct.Identity)
	if err != nil {
		return nil, fmt.Errorf("client: identity: %w", err)
	}
	if o.Transport, err = acct.Transport(o.Transport); err != nil {
		return nil, err
	}
	c := &Client{opts: o, log: o.Logger, db: db, acct: acct, identity: id, relayHTTP: o.Transport.Client()}
	c.receipts = c.newReceiptQueue()
	c.keylog = c.newKeyLog()
	c.sealed = c.newSealedSender()
	c.handlers = make(contentHandlers)
	c.registerHandlers(c.handlers)
	// Messages that expired while the device was off go first.
	if _, err := c.ExpireMessages(ctx); err != nil {
		return nil, err
	}
	c.janitor = c.startJanitor()
	return c, nil
}

// Username is the account's name.
func (c *Client) Username() string { return c.acct.Username }

// DeviceID is this device's id within the account.
func (c *Client) DeviceID() uint32 { return c.acct.DeviceID }

// Relay is the relay URL the device is enrolled with.
func (c *Client) Relay() string { return c.acct.Relay }

// IdentityKey is the account's serialized public identity key.
func (c *Client) IdentityKey() []byte { return c.identity.PublicKey().Serialize() }

// Close disconnects, locks the store and forgets the device's secrets.
func (c *Client) Close() error {
	c.receipts.Stop() // pending receipts are dropped
	c.Disconnect()
	c.janitor.stop()
	c.cryptoMu.Lock()
	clear(c.acct.DeviceKey)
	clear(c.acct.Identity)
	c.cryptoMu.Unlock()
	return c.db.Close()
}

// ChangePassphrase re-wraps the local store's key under newPassphrase,
// which must pass the passphrase policy (Options.MinPassphraseBits) and
// differ from the duress passphrase; old is the current one.
func (c *Client) ChangePassphrase(old, newPassphrase []byte) error {
	return c.db.ChangePassphrase(old, newPassphrase, c.passphraseMinimum(context.Background()), rand.Reader)
}

// passphraseMinimum is the stricter of the client's passphrase policy and
// the organization's.
func (c *Client) passphraseMinimum(ctx context.Context) float64 {
	m := c.opts.MinPassphraseBits
	if m == 0 {
		m = store.DefaultMinPassphraseBits
	}
	if m < 0 {
		return m // tests: no policy
	}
	if p, err := c.OrgPolicy(ctx); err == nil && float64(p.GetMinPassphraseBits()) > m {
		m = float64(p.GetMinPassphraseBits())
	}
	return m
}

// PassphraseBelowPolicy reports whether passphrase (the one just used to
// unlock) is weaker than the organization's minimum, so that a front end
// can ask the person to change it.
func (c *Client) PassphraseBelowPolicy(ctx context.Context, passphrase []byte) error {
	p, err := c.OrgPolicy(ctx)
	if err != nil || p.GetMinPassphraseBits() == 0 {
		return err
	}
	return store.CheckPassphrase(passphrase, float64(p.GetMinPassphraseBits()))
}

// Policy returns the unlock policy of the local store.
func (c *Client) Policy() (store.Policy, error) { return c.db.Policy() }

// SetWipeAfter makes the store wipe itself after n consecutive wrong
// passphrases (0: never).
func (c *Client) SetWipeAfter(n int) error { return c.db.SetWipeAfter(n) }

// SetDuress sets the duress passphrase (empty: none): unlocking with it
// silently wipes the store, and Open then returns store.ErrNoStore as on a
// device where nothing was ever enrolled.
func (c *Client) SetDuress(duress []byte) error { return c.db.SetDuress(duress, rand.Reader) }

// ConnectOptions tune Connect.
type ConnectOptions struct {
	// Receive starts the receive loop: queued and pushed messages are
	// decrypted, stored, reported and acknowledged. Without it, incoming
	// messages stay queued at the relay for a later connection.
	Receive bool
	// NoAck keeps received envelopes unacknowledged (they are stored and
	// shown, and will be redelivered): for testing delivery guarantees.
	NoAck bool
}

// Connect opens and authenticates the connection to the relay. No lock is
// held while it talks to the relay: local reads and sends (which fail with
// ErrNotConnected until it is done) never wait for a slow relay. Concurrent
// calls wait for the attempt under way; Disconnect aborts it.
func (c *Client) Connect(ctx context.Context, co ConnectOptions) error {
	c.mu.Lock()
	for c.connecting != nil {
		wait := c.connecting
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	if c.conn != nil {
		c.mu.Unlock()
		return nil
	}
	if c.db.Locked() {
		c.mu.Unlock()
		return ErrLocked
	}
	done := make(chan struct{})
	attempt, abort := context.WithCancelCause(ctx)
	c.connecting, c.abortConnect = done, abort
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.connecting, c.abortConnect = nil, nil
		c.mu.Unlock()
		close(done)
		abort(nil)
	}()
	err := c.connect(attempt, co)
	if err != nil && errors.Is(context.Cause(attempt), errDisconnected) {
		return fmt.Errorf("%w (%w)", errDisconnected, err)
	}
	return err
}

// errDisconnected aborts a connection attempt Disconnect stopped.
var errDisconnected = errors.New("client: disconnected while connecting")

// connect is Connect's attempt, with no lock held but at the end, to
// publish the connection unless Disconnect aborted the attempt (ctx).
func (c *Client) connect(ctx context.Context, co ConnectOptions) error {
	conn, err := transport.Dial(ctx, c.acct.Relay, c.opts.Transport)
	if err != nil {
		return err
	}
	resp, err := conn.Authenticate(ctx, c.acct.Username, c.acct.DeviceID, c.acct.PrivateDeviceKey())
	if err != nil {
		conn.Close()
		if transport.Code(err) == wire.ErrorCode_REVOKED {
			return fmt.Errorf("%w (%w)", ErrRevoked, err)
		}
		return fmt.Errorf("client: authenticate: %w", err)
	}
	expired := resp.SubscriptionExpired
	c.noteSubscription(ctx, resp.SubscriptionExpiresMs)
	c.syncOrg(ctx, conn)
	c.reportBuild(ctx, conn) // releases.go
	if err := c.uploadOwnAccessKey(ctx, conn); errors.Is(err, ErrStaleProfileKey) {
		// An own device changed the key; its message is in the queue.
		c.log.Info("access key not uploaded: an own device set a newer one", "err", err)
	} else if err != nil {
		c.log.Warn("access key not uploaded", "err", err)
	}
	if !expired {
		// Done before anything else, so that even a short-lived
		// connection (one send) keeps the prekeys stocked and fresh.
		if err := c.replenishPreKeys(ctx, conn); err != nil {
			c.log.Warn("prekey replenish failed", "err", err)
		}
		if err := c.replenishKeyPackages(ctx, conn); err != nil {
			c.log.Warn("group key package replenish failed", "err", err)
		}
	}
	if err := c.publishConn(ctx, conn, expired, co); err != nil {
		conn.Close() // not under the lock: it says goodbye to the relay
		return err
	}
	return nil
}

// publishConn makes conn the client's connection and starts its loops, unless
// Disconnect aborted the attempt (ctx) or the idle lock came meanwhile.
func (c *Client) publishConn(ctx context.Context, conn *transport.Conn, expired bool, co ConnectOptions) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx.Err() != nil {
		return fmt.Errorf("client: connect: %w", ctx.Err())
	}
	if c.db.Locked() {
		return ErrLocked
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	c.conn, c.expired, c.cancel, c.idle = conn, expired, cancel, nil
	if co.Receive {
		c.idle = make(chan struct{})
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.receiveLoop(loopCtx, conn, co.NoAck, c.idle)
		}()
	}
	c.startAudit(loopCtx, conn, co.Receive)
	return nil
}

// Disconnect closes the relay connection and stops the receive loop; a
// connection attempt under way is aborted.
func (c *Client) Disconnect() {
	c.mu.Lock()
	conn, cancel := c.conn, c.cancel
	c.conn, c.cancel = nil, nil
	if c.abortConnect != nil {
		c.abortConnect(errDisconnected)
	}
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if conn != nil {
		conn.Close()
	}
	c.sealed.Close()
	c.wg.Wait()
}

// Drained is closed once the backlog queued at the relay when Connect ran
// has been pushed; nil when not connected.
func (c *Client) Drained() <-chan struct{} {
	conn, err := c.connection()
	if err != nil {
		return nil
	}
	return conn.Drained()
}

// Idle is closed once the receive loop has processed the backlog that was
// queued at the relay when Connect ran; nil without a receive loop.
func (c *Client) Idle() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idle
}

// Done is closed when the relay connection ends; nil when not connected.
func (c *Client) Done() <-chan struct{} {
	conn, err := c.connection()
	if err != nil {
		return nil
	}
	return conn.Done()
}

func (c *Client) connection() (*transport.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil {
		return nil, ErrNotConnected
	}
	return c.conn, nil
}

func (c *Client) emit(e Event) {
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(e)
	}
}

// convFor is the history conversation key of a peer.
func convFor(user string) string { return conversation.ConvFor(user) }

// messageKey names a message for de-duplication: ids are chosen by senders,
// so they are only unique per sender.
func messageKey(sender string, id []byte) []byte { return conversation.MessageKey(sender, id) }

func normalize(user string) string { return conversation.Normalize(user) }
