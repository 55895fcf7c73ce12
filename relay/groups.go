package relay

import (
	"context"
	"time"

	"sotto/wire"
)

// The relay as the MLS Delivery Service (DESIGN §5, RFC 9420 §16).
//
// Everything group-related the relay handles is opaque MLS: KeyPackages,
// commits, Welcomes, GroupInfo and PrivateMessages. It keeps KeyPackages
// per device, orders each group's commits (the first commit for an epoch
// wins; a later one for the same epoch is refused with the winner), and
// stores every group message once, delivered to each member device from
// that device's cursor. It knows which devices are in which group because
// the committers tell it (added and removed devices), which it needs for
// fan-out and nothing else: who may add, remove or post is the group's own
// policy, checked by every member on every commit. A relay that lies about
// membership can withhold messages or deliver a commit to a ghost, but the
// members refuse any leaf whose credential is not an org-certified
// identity, so it cannot make a ghost a member.

// Group message kinds, as stored.
const (
	GroupKindMessage uint8 = 1 // an application PrivateMessage or a proposal
	GroupKindCommit  uint8 = 2 // a commit
	GroupKindWelcome uint8 = 3 // delivered only to devices the commit added
)

// KeyPackageCount reports what a device has left.
type KeyPackageCount struct {
	OneTime       int
	HasLastResort bool
}

// GroupCommit is a commit submitted for epoch Epoch of group GroupID.
// Epoch 0 with no such group creates it with Sender and Added as members.
type GroupCommit struct {
	GroupID   []byte
	Epoch     uint64
	Sender    DeviceAddr
	Commit    []byte
	Welcome   []byte       // for Added; nil when none
	Added     []DeviceAddr // start receiving with this commit's Welcome
	Removed   []DeviceAddr // receive this commit, then nothing more
	GroupInfo []byte       // of the epoch the commit starts
	Timestamp time.Time
	// External: Sender joins by this (external) commit; it must belong
	// to an account with a current member device, and becomes a member.
	External bool
}

// GroupCommitResult says what CommitGroup did.
type GroupCommitResult struct {
	// Accepted: the commit is stored at Seq and the group is at Epoch.
	// Otherwise another commit won the epoch: Winner and WinnerSeq are it,
	// Epoch is the group's epoch now. Resubmitting an accepted commit (a
	// retry after a lost answer) is accepted again, nothing stored twice.
	Accepted  bool
	Seq       uint64
	Epoch     uint64
	Winner    []byte
	WinnerSeq uint64
	// Members are the devices the commit is delivered to (members before
	// it, removed ones included, and those added), for the push.
	Members []DeviceAddr
}

// GroupSend is one message to a group, stored once for every member.
type GroupSend struct {
	GroupID   []byte
	Sender    DeviceAddr
	MessageID []byte
	Content   []byte
	Timestamp time.Time
}

// GroupSendResult says what AppendGroup did.
type GroupSendResult struct {
	Seq       uint64
	Duplicate bool // stored before (same sender and message id): nothing stored now
}

// GroupMessage is one stored group message as delivered to a device.
type GroupMessage struct {
	GroupID   []byte
	Seq       uint64
	Kind      uint8
	Epoch     uint64 // commits: the epoch the commit was for
	Timestamp time.Time
	Content   []byte // for a device the commit added: the Welcome
	// Size is the content's size. Content is nil when Size is above
	// GroupInlineMax: it is read in parts (ReadGroup).
	Size uint64
}

// GroupAck moves a device's cursor in a group to Seq.
type GroupAck struct {
	GroupID []byte
	Seq     uint64
}

// GroupState is a group's current epoch and GroupInfo.
type GroupState struct {
	Epoch     uint64
	GroupInfo []byte
	Members   []DeviceAddr
}

// GroupStore is the Delivery Service's storage. A store implements it
// next to Mailbox (the relay finds it by a type assertion on the Mailbox,
// then the Directory).
//
// Semantics every backend must have (see relay/storetest):
//   - StoreKeyPackages adds one-time KeyPackages and replaces the last
//     resort one (when not nil); TakeKeyPackage removes and returns the
//     oldest one-time KeyPackage, else returns the last-resort one without
//     removing it, else ErrNotFound.
//   - CommitGroup and AppendGroup return only once durable, in one
//     transaction each. Per group, messages get increasing sequence
//     numbers in commit order. CommitGroup stores a commit only if the
//     group is at c.Epoch (first commit wins) and c.Sender is a member
//     (for an external commit: of an account with a member device, and
//     it becomes one);
//     AppendGroup is idempotent on (Sender, MessageID) per group and
//     refuses a sender that is not a member (ErrForbidden). An unknown
//     group is ErrNotFound.
//   - A group message is stored once, whatever the number of members;
//     each member device has a cursor. FetchGroups returns a device's
//     messages after its cursors, in sequence order per group: a device
//     added by a commit gets that commit's Welcome in its place, then what
//     follows; a removed device gets messages up to the commit that
//     removed it. AckGroups moves cursors forward only.
//   - Contents above GroupInlineMax are left out of FetchGroups (Size
//     says how large) and read with ReadGroup.
//   - ExpireGroups deletes messages every member has acknowledged, those
//     older than before, and removed devices' cursors once they have the
//     commit that removed them; it returns how many messages went.
type GroupStore interface {
	StoreKeyPackages(ctx context.Context, dev DeviceAddr, oneTime [][]byte, lastResort []byte) error
	CountKeyPackages(ctx context.Context, dev DeviceAddr) (KeyPackageCount, error)
	TakeKeyPackage(ctx context.Context, dev DeviceAddr) (kp []byte, lastResort bool, err error)

	CommitGroup(ctx context.Context, c *GroupCommit) (GroupCommitResult, error)
	AppendGroup(ctx context.Context, m *GroupSend) (GroupSendResult, error)
	FetchGroups(ctx context.Context, dev DeviceAddr, limit int) ([]GroupMessage, error)
	AckGroups(ctx context.Context, dev DeviceAddr, acks []GroupAck) error
	Group(ctx context.Context, groupID []byte) (GroupState, error)
	// ReadGroup returns n bytes at offset of what FetchGroups delivers
	// dev at seq (the Welcome for a device the commit added, else the
	// content), or with seq 0 of the group's GroupInfo (only for a
	// device of an account with a member device), and its total size and
	// epoch (seq 0: the GroupInfo's; else the message's). Anything dev is
	// not delivered is ErrNotFound.
	ReadGroup(ctx context.Context, dev DeviceAddr, groupID []byte, seq, offset uint64, n int) (data []byte, total, epoch uint64, err error)
	ExpireGroups(ctx context.Context, before time.Time) (int64, error)
}

// Limits of the Delivery Service.
const (
	MaxGroupID          = 64
	maxKeyPackage       = 16 << 10
	maxKeyPackageUpload = 200
	// A message sent inline must fit in a frame; a handshake message
	// (commit, Welcome, GroupInfo) may come in parts up to
	// MaxGroupHandshake (groupparts.go).
	maxGroupMessage = wire.MaxFrameSize - 1024
	maxGroupInfo    = wire.MaxFrameSize - 1024
	maxGroupDevices = 10_000 // added or removed by one commit
	groupFetchBatch = 256
	maxGroupAcks    = 1024
)

// GroupInlineMax is the largest stored group content a fetch answer (or
// a GroupInfo answer) carries; a larger one is announced by its size and
// read in parts of at most GroupPartMax bytes.
const (
	GroupInlineMax = 64 << 10
	GroupPartMax   = 192 << 10
	// MaxGroupHandshake bounds an uploaded commit request (commit,
	// Welcome and GroupInfo together): a commit creating a group of
	// 10,000 org-certified members, whose Welcome and GroupInfo each
	// carry the ratchet tree (~0.7 KB per leaf), is about 20 MB.
	MaxGroupHandshake = 48 << 20
)
