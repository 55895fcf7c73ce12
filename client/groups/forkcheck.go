package groups

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client/content"
	"sotto/mls"
	"sotto/wire"
)

// Fork and drop detection. The relay orders commits; a hostile one could
// give members different commits for the same epoch (a fork: each side
// then lives in a group the other cannot read) or withhold a commit from
// one member (a drop: it stays behind, reading nothing new). Every group
// application message carries the sender's EpochCheck — the epoch and a
// short hash of its RFC 9420 epoch_authenticator — inside the encrypted
// Content (field 8) and, the same bytes, in the MLS authenticated_data,
// which a receiver can read without the epoch's keys. A receiver then
// detects:
//   - a fork: a message of its own epoch whose check differs from its own
//     (read from the authenticated data when the message does not
//     decrypt, as it does not across a fork; from the Content when it
//     does), or a commit for an epoch it already left that is not the one
//     it applied;
//   - a drop: a message or commit of an epoch later than its own, while
//     it has no commit of its own in flight (the relay delivers a group's
//     messages in order, so the commit between was withheld).
// Either is told to the user (EventForked, EventWithheld, and a history
// line), and the device rejoins by external commit from the GroupInfo the
// relay serves, which brings it back into the group the other members
// are in. A relay can forge the unauthenticated signals to make a member
// rejoin (one commit), which it could force anyway by withholding; it
// cannot make a member accept a forked or replayed state.

const (
	epochCheckSize  = 16
	epochCheckLabel = "sotto group epoch check v1"
	// keptChecks is how many past epochs' checks (and applied commits) a
	// device keeps per group.
	keptChecks = 8
)

// Table of epoch checks: group id || epoch (8) -> check (16) || hash of
// the commit that started the epoch (32, when known).
const tblEpochChecks = "mls-epoch-checks"

// mlsSealOptions puts the epoch check in the authenticated data (the
// Content is padded already).
func mlsSealOptions(aad []byte) mls.SealOptions { return mls.SealOptions{AuthenticatedData: aad} }

func checkKey(group []byte, epoch uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), group...), epoch)
}

// authenticatorCheck hashes g's epoch authenticator.
func authenticatorCheck(g *mls.Group) []byte {
	h := sha256.New()
	h.Write([]byte(epochCheckLabel))
	h.Write(binary.BigEndian.AppendUint64(nil, g.Epoch()))
	h.Write(g.EpochAuthenticator())
	return h.Sum(nil)[:epochCheckSize]
}

// epochCheck returns g's EpochCheck and remembers it (under m.mu).
func (m *Manager) epochCheck(ctx context.Context, group []byte, g *mls.Group) (*content.EpochCheck, error) {
	check := authenticatorCheck(g)
	if err := m.rememberEpoch(ctx, group, g.Epoch(), check, nil); err != nil {
		return nil, err
	}
	return &content.EpochCheck{Epoch: g.Epoch(), Authenticator: check}, nil
}

// rememberEpoch keeps an epoch's check (and the commit that started it)
// and forgets those older than keptChecks epochs.
func (m *Manager) rememberEpoch(ctx context.Context, group []byte, epoch uint64, check, commit []byte) error {
	k := checkKey(group, epoch)
	old, err := m.kv.Get(ctx, tblEpochChecks, k)
	if err == nil && len(old) >= epochCheckSize && (commit == nil || len(old) > epochCheckSize) {
		return nil
	}
	v := append([]byte(nil), check...)
	if commit != nil {
		sum := sha256.Sum256(commit)
		v = append(v, sum[:]...)
	} else if len(old) > epochCheckSize {
		v = old
	}
	if err := m.kv.Put(ctx, tblEpochChecks, k, v); err != nil {
		return err
	}
	if epoch >= keptChecks {
		return m.kv.Delete(ctx, tblEpochChecks, checkKey(group, epoch-keptChecks))
	}
	return nil
}

// storedCheck returns the check this device kept for an epoch (nil: none)
// and the hash of the commit that started it.
func (m *Manager) storedCheck(ctx context.Context, group []byte, epoch uint64) (check, commit []byte) {
	v, err := m.kv.Get(ctx, tblEpochChecks, checkKey(group, epoch))
	if err != nil || len(v) < epochCheckSize {
		return nil, nil
	}
	if len(v) == epochCheckSize+sha256.Size {
		commit = v[epochCheckSize:]
	}
	return v[:epochCheckSize], commit
}

// Detection outcomes.
type detection int

const (
	detectNone detection = iota
	detectFork
	detectDrop
)

// ErrForked and ErrWithheld describe what was detected (EventForked,
// EventWithheld).
var (
	ErrForked   = errors.New("groups: the relay gave members different commits (a fork)")
	ErrWithheld = errors.New("groups: the relay withheld a commit from this device")
)

// detectUnreadable classifies a group message this device could not
// process at epoch g.Epoch(): a later epoch (drop), or its own epoch
// with another member's different check (fork). rec.Pending: a commit of
// this device is in flight, so a later epoch is expected.
func (m *Manager) detectUnreadable(rec *record, g *mls.Group, gm *wire.GroupMessage, herr error) (detection, string) {
	if m.opts.NoForkCheck {
		return detectNone, ""
	}
	info, err := mls.Peek(gm.Content)
	if err != nil || !bytes.Equal(info.GroupID, gm.GroupId) {
		return detectNone, ""
	}
	if info.Epoch > g.Epoch() && rec.Pending == nil {
		return detectDrop, fmt.Sprintf("a message of epoch %d arrived while this device is at epoch %d: the relay withheld a commit", info.Epoch, g.Epoch())
	}
	if info.Epoch != g.Epoch() || info.Content != mls.ApplicationContent || !errors.Is(herr, mls.ErrDecrypt) {
		return detectNone, ""
	}
	var ec content.EpochCheck
	if proto.Unmarshal(info.AuthenticatedData, &ec) != nil || ec.Epoch != g.Epoch() || len(ec.Authenticator) != epochCheckSize {
		return detectNone, ""
	}
	if subtle.ConstantTimeCompare(ec.Authenticator, authenticatorCheck(g)) == 1 {
		return detectNone, "" // same view: a damaged message, not a fork
	}
	return detectFork, fmt.Sprintf("a member's message of epoch %d was sent in another version of the group: the relay gave members different commits", g.Epoch())
}

// detectReplacedCommit reports a commit for an epoch this device left
// that is not the commit it applied for it (a fork); the same commit
// again is a replay, ignored.
func (m *Manager) detectReplacedCommit(ctx context.Context, gm *wire.GroupMessage) (detection, string) {
	if m.opts.NoForkCheck {
		return detectNone, ""
	}
	info, err := mls.Peek(gm.Content)
	if err != nil || info.Content != mls.CommitContent || !bytes.Equal(info.GroupID, gm.GroupId) {
		return detectNone, ""
	}
	_, applied := m.storedCheck(ctx, gm.GroupId, info.Epoch+1)
	if applied == nil {
		return detectNone, ""
	}
	sum := sha256.Sum256(gm.Content)
	if subtle.ConstantTimeCompare(sum[:], applied) == 1 {
		return detectNone, "" // a replay of the commit applied
	}
	return detectFork, fmt.Sprintf("a commit for epoch %d arrived that is not the one this device applied: the relay gave members different commits", info.Epoch)
}

// checkContent compares the epoch check inside a decrypted message with
// the authenticated data it came with and with this device's own check
// of that epoch.
func (m *Manager) checkContent(ctx context.Context, group []byte, rcv *mls.Received, ct *content.Content) (detection, string) {
	if m.opts.NoForkCheck || ct.EpochCheck == nil {
		return detectNone, ""
	}
	ec := ct.EpochCheck
	if ec.Epoch != rcv.Epoch {
		return detectNone, ""
	}
	own, _ := m.storedCheck(ctx, group, rcv.Epoch)
	if own == nil || subtle.ConstantTimeCompare(own, ec.Authenticator) == 1 {
		return detectNone, ""
	}
	return detectFork, fmt.Sprintf("a member's view of epoch %d differs from this device's: the relay gave members different commits", rcv.Epoch)
}

// detected tells the user and keeps a history line (returned); the
// caller rejoins.
func (m *Manager) detected(ctx context.Context, group []byte, d detection, detail string) (processed, error) {
	kind, what := EventForked, ErrForked
	if d == detectDrop {
		kind, what = EventWithheld, ErrWithheld
	}
	m.log.Warn("group integrity", "group", fmt.Sprintf("%x", group), "detail", detail)
	m.emit(Event{Kind: kind, Group: group, Detail: detail})
	id, err := content.NewID(rand.Reader)
	if err != nil {
		return processed{}, err
	}
	// A local entry: its sequence number sorts after the relay's.
	msg := &Message{Group: group, Seq: uint64(time.Now().UnixNano()) | 1<<63, ID: id, Kind: KindAlert, Received: time.Now(),
		Text: fmt.Sprintf("%v: %s; rejoining", what, detail)}
	if _, err := m.keep(ctx, msg); err != nil {
		return processed{}, err
	}
	return processed{ok: true, rejoin: true, msgs: []Message{*msg}}, nil
}

// rejoin brings this device back into the group the relay holds, by
// external commit (resyncing its own leaf), after a fork or a drop.
func (m *Manager) rejoin(ctx context.Context, group []byte) error {
	m.mu.Lock()
	rec, _, err := m.load(ctx, group)
	m.mu.Unlock()
	if err == nil && rec.Quarantine != nil {
		// After a refused commit: back only to a group without it.
		return m.recoverGroup(ctx, group)
	}
	if err := m.joinExternal(ctx, group, true); err != nil {
		m.emit(Event{Kind: EventForked, Group: group, Detail: fmt.Sprintf("rejoining the group failed: %v", err)})
		return err
	}
	m.emit(Event{Kind: EventRejoined, Group: group, Detail: "rejoined the group by external commit"})
	return nil
}
