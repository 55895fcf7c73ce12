// Package groups is the client's side of group chats: MLS groups (package
// mls, RFC 9420) whose Delivery Service is the relay (relay/groupsds.go).
//
// Members are devices; a user is in a group with all of their devices.
// Every leaf's credential is an org-certified identity (credential.go),
// checked by every member against the org key it pinned from its own
// invitation before it accepts a commit or a Welcome: a member the relay
// made up is refused and the user told (Event). The relay orders commits
// (the first for an epoch wins); a device whose commit lost processes the
// winner and commits again on top, by itself.
//
// State lives in the device's encrypted store (client/store): one record
// per group (the MLS state), the device's MLS signature key, its unused
// KeyPackages' private keys, and the received messages. Network I/O never
// happens under the state lock: a commit is built from a snapshot, sent,
// and applied only if the relay accepted it.
package groups

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"sotto/client/store"
	"sotto/mls"
	"sotto/signal/keys"
	"sotto/wire"
)

// Suite is the cipher suite of every group (DESIGN §5).
const Suite = mls.X25519_AES128GCM_SHA256_Ed25519

// Relay is the relay connection (client/transport.Conn).
type Relay interface {
	UploadKeyPackages(ctx context.Context, oneTime [][]byte, lastResort []byte) error
	KeyPackageCount(ctx context.Context) (*wire.KeyPackageCountResponse, error)
	FetchKeyPackages(ctx context.Context, username string) (*wire.FetchKeyPackagesResponse, error)
	GroupCommit(ctx context.Context, req *wire.GroupCommitRequest) (*wire.GroupCommitResponse, error)
	GroupSend(ctx context.Context, req *wire.GroupSendRequest) (*wire.GroupSendResponse, error)
	GroupFetch(ctx context.Context, limit uint32) (*wire.GroupFetchResponse, error)
	GroupAck(ctx context.Context, acks []*wire.GroupAck) error
	GroupInfo(ctx context.Context, groupID []byte) (*wire.GroupInfoResponse, error)
	// Handshake messages larger than a frame, in parts (large.go).
	GroupUpload(ctx context.Context, req *wire.GroupUploadRequest) (*wire.GroupUploadResponse, error)
	GroupRead(ctx context.Context, req *wire.GroupReadRequest) (*wire.GroupReadResponse, error)
	GetDevices(ctx context.Context, username string) (*wire.DeviceList, error)
	// GroupWaiting signals the relay's "new group messages" pushes;
	// Done is closed when the connection ends.
	GroupWaiting() <-chan struct{}
	Done() <-chan struct{}
}

// KV is the device's encrypted store (client/store.Store).
type KV interface {
	Get(ctx context.Context, table string, key []byte) ([]byte, error)
	Put(ctx context.Context, table string, key, value []byte) error
	Delete(ctx context.Context, table string, key []byte) error
	List(ctx context.Context, table string) ([]store.Entry, error)
	// The message log (in arrival order per conversation, idempotent on
	// the message id): group messages, received and sent.
	AppendMessage(ctx context.Context, conv string, id, value []byte) (added bool, err error)
	Messages(ctx context.Context, conv string, limit int) ([][]byte, error)
	// One message of the log, by id: read, replaced (reactions, edits,
	// deletes, receipts), removed (disappearing timers).
	Message(ctx context.Context, conv string, id []byte) ([]byte, error)
	UpdateMessage(ctx context.Context, conv string, id, value []byte) error
	DeleteMessage(ctx context.Context, conv string, id []byte) (bool, error)
	// Update runs fn in one transaction: a group's record and state are
	// written together (state.go).
	Update(ctx context.Context, fn func(tx *store.Tx) error) error
}

// Self is this device.
type Self struct {
	Username    string
	DeviceID    uint32
	Identity    *keys.IdentityKeyPair
	Certificate []byte            // the account's orgcert identity certificate
	OrgKey      ed25519.PublicKey // pinned from the invitation
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// EventRefused: a member (or a commit or Welcome bringing one) was
	// refused because its credential is not an org-certified identity.
	EventRefused EventKind = iota + 1
	// EventJoined: this device joined a group from a Welcome.
	EventJoined
	// EventRemoved: this device was removed from a group.
	EventRemoved
	// EventChanged: a commit changed a group this device is in (members
	// added or removed, keys updated).
	EventChanged
	// EventForked: the relay gave members different commits (forkcheck.go).
	EventForked
	// EventWithheld: the relay withheld a commit from this device.
	EventWithheld
	// EventRejoined: this device rejoined a group by external commit
	// after a fork or a withheld commit.
	EventRejoined
)

// Event tells the user about a group.
type Event struct {
	Kind   EventKind
	Group  []byte
	Detail string
}

// Options configures a Manager.
type Options struct {
	Logger  *slog.Logger // nil: discard
	OnEvent func(Event)
	// MaxRetries bounds how often a commit that lost its epoch is redone
	// on top of the winner (5).
	MaxRetries int
	// CheckUser, when set, vets the identity key of a user about to be
	// added (beyond the org certificate every leaf carries): the client
	// checks it against the key log and the key it holds for that contact.
	CheckUser func(ctx context.Context, username string, identityKey []byte) error
	// Receipts, when set and true, has this device send delivery receipts
	// (batched, one per group per sync) and read receipts (MarkRead).
	Receipts func(ctx context.Context) bool
	// NoForkCheck turns fork and withheld-commit detection off (tests of
	// the detection only).
	NoForkCheck bool
	// NoQuarantine turns off the quarantine of a group after a refused
	// commit (recover.go): the device then refuses the commit only, as
	// before it, and a later message has it rejoin the relay's group,
	// refused change and all (tests of the defence only).
	NoQuarantine bool
}

// Manager runs this device's groups.
type Manager struct {
	relay func() (Relay, error)
	kv    KV
	self  Self
	opts  Options
	log   *slog.Logger

	// mu orders the load-change-save of group records; nothing under it
	// talks to the relay.
	mu sync.Mutex
	// syncing admits one Sync at a time (a token, taken with the
	// caller's ctx): two interleaved fetch-process-ack rounds would hand
	// the same message to both, and each would return only part of what
	// arrived.
	syncing chan struct{}
	// migrated: the messages of an older layout were moved (under mu).
	migrated bool
	// seen: per group, the last seq taken in (pushed.go).
	seen seenSeqs
}

// Errors callers branch on.
var (
	ErrNoGroup     = errors.New("groups: no such group")
	ErrRemovedHere = errors.New("groups: this device is no longer in the group")
	ErrNotMember   = errors.New("groups: no such member")
	// ErrCommitRace: the relay kept taking other members' commits over
	// this device's, MaxRetries times.
	ErrCommitRace = errors.New("groups: other members' changes kept winning; try again")
)

// New returns the Manager of a device.
func New(relay func() (Relay, error), kv KV, self Self, opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxRetries <= 0 {
		opts.MaxRetries = 5
	}
	return &Manager{relay: relay, kv: kv, self: self, opts: opts, log: opts.Logger, syncing: make(chan struct{}, 1)}
}

func (m *Manager) emit(e Event) {
	if m.opts.OnEvent != nil {
		m.opts.OnEvent(e)
	}
}

func (m *Manager) validator() *validator { return &validator{orgKey: m.self.OrgKey} }

// refusedError wraps err naming the refused identities, and tells the
// user.
func (m *Manager) refused(group []byte, v *validator, what string, err error) error {
	who := "a member"
	if len(v.refused) > 0 {
		who = fmt.Sprint(v.refused)
	}
	detail := fmt.Sprintf("%s refused: %s is not certified by the organization (%v)", what, who, err)
	m.emit(Event{Kind: EventRefused, Group: group, Detail: detail})
	return fmt.Errorf("%w: %s", ErrNotCertified, detail)
}

// Member is one member device of a group.
type Member struct {
	Username string
	DeviceID uint32
	Leaf     uint32
}

// Info describes a group this device is in.
type Info struct {
	ID      []byte
	Name    string
	Epoch   uint64
	Members []Member
	// Policy is the group's roles, rules, name and description (nil for
	// a group made before policies: every member may do everything).
	Policy *Policy
}

// members lists g's members from their credentials.
func members(g *mls.Group) []Member {
	var out []Member
	for _, mb := range g.Members() {
		id, err := ParseIdentity(mb.Identity)
		if err != nil {
			continue // every leaf was validated on entry
		}
		out = append(out, Member{Username: id.Username, DeviceID: id.DeviceID, Leaf: mb.Index})
	}
	return out
}

// Info returns a group's name, epoch and members.
func (m *Manager) Info(ctx context.Context, group []byte) (*Info, error) {
	rec, g, err := m.load(ctx, group)
	if err != nil {
		return nil, err
	}
	info := &Info{ID: group, Name: rec.Name, Epoch: g.Epoch(), Members: members(g)}
	if info.Policy, err = policyOf(g); err != nil {
		return nil, err
	}
	if info.Policy != nil && info.Policy.Name != "" {
		info.Name = info.Policy.Name
	}
	return info, nil
}

// List returns the groups this device is in.
func (m *Manager) List(ctx context.Context) ([]Info, error) {
	es, err := m.kv.List(ctx, tblGroups)
	if err != nil {
		return nil, err
	}
	var out []Info
	for _, e := range es {
		info, err := m.Info(ctx, e.Key)
		if err != nil {
			if errors.Is(err, ErrRemovedHere) {
				continue
			}
			return nil, err
		}
		out = append(out, *info)
	}
	return out, nil
}
