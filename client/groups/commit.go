package groups

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"sotto/client/transport"
	"sotto/mls"
	"sotto/wire"
)

// addition is one device to add: its KeyPackage, vetted.
type addition struct {
	user   string
	device uint32
	kp     []byte
}

// fetchAdditions takes a KeyPackage of every device of each user and
// vets its credential: a KeyPackage that is not an org-certified identity
// of that user's device (a ghost the relay slipped in) is refused and the
// user told; the rest are added.
func (m *Manager) fetchAdditions(ctx context.Context, group []byte, users []string) ([]addition, error) {
	r, err := m.relay()
	if err != nil {
		return nil, err
	}
	// Each user's KeyPackages in one round trip; several users' at once
	// (a group of hundreds is not created one user at a time).
	resps := make([]*wire.FetchKeyPackagesResponse, len(users))
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(fetchParallel)
	for i, u := range users {
		eg.Go(func() error {
			resp, err := r.FetchKeyPackages(ectx, u)
			if err != nil {
				return fmt.Errorf("groups: key packages of %s: %w", u, err)
			}
			resps[i] = resp
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	var out []addition
	var refused []string
	for i, u := range users {
		for _, dk := range resps[i].KeyPackages {
			if u == m.self.Username && dk.DeviceId == m.self.DeviceID {
				continue // this device is in already
			}
			info, err := mls.InspectKeyPackage(dk.KeyPackage)
			var id *Identity
			if err == nil {
				if id, err = verifyIdentity(m.self.OrgKey, info.Credential, info.SignatureKey); err == nil &&
					(id.Username != u || id.DeviceID != dk.DeviceId) {
					err = fmt.Errorf("%w: the relay served %s's device %d for %s's device %d", ErrNotCertified, id.Username, id.DeviceID, u, dk.DeviceId)
				}
			}
			if err == nil && m.opts.CheckUser != nil && u != m.self.Username {
				err = m.opts.CheckUser(ctx, u, id.IdentityKey)
			}
			if err != nil {
				refused = append(refused, fmt.Sprintf("%s device %d: %v", u, dk.DeviceId, err))
				continue
			}
			out = append(out, addition{user: u, device: dk.DeviceId, kp: dk.KeyPackage})
		}
	}
	if len(refused) > 0 {
		m.emit(Event{Kind: EventRefused, Group: group, Detail: fmt.Sprintf("not added, not certified by the organization: %v", refused)})
		if len(out) == 0 {
			return nil, fmt.Errorf("%w: %v", ErrNotCertified, refused)
		}
	}
	return out, nil
}

// fetchParallel bounds the KeyPackage fetches in flight.
const fetchParallel = 16

// change is what one commit does.
type change struct {
	add    []addition
	remove []string // usernames: all their devices
	policy *Policy  // the group's new policy (policy.go), nil: unchanged
}

// Create makes a group named name with this device, the user's other
// devices and every device of members, and returns its id. This user is
// its admin, and every member may add, remove and rename
// (CreateGroup sets other rules).
func (m *Manager) Create(ctx context.Context, name string, users ...string) ([]byte, error) {
	return m.CreateGroup(ctx, CreateOptions{Name: name, Users: users, MembersMay: []string{ActAdd, ActRemove, ActRename}})
}

// CreateGroup makes a group as opts says (policy.go).
func (m *Manager) CreateGroup(ctx context.Context, opts CreateOptions) ([]byte, error) {
	pol, err := opts.policy(m.self.Username)
	if err != nil {
		return nil, err
	}
	name, users := opts.Name, opts.Users
	identity, seed, err := m.ownIdentity(ctx)
	if err != nil {
		return nil, err
	}
	id := randomID()
	g, err := mls.NewGroupWithOptions(Suite, id, identity, seed, &mls.GroupOptions{CredentialValidator: m.validator(), SupportedExtensions: supportedExtensions})
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	err = m.save(ctx, id, &record{Name: name}, g)
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	// This user's other devices, if they have KeyPackages up.
	adds, err := m.fetchAdditions(ctx, id, []string{m.self.Username})
	if err != nil && !errors.Is(err, ErrNotCertified) && !isNotFound(err) {
		return nil, err
	}
	if len(users) > 0 {
		more, err := m.fetchAdditions(ctx, id, users)
		if err != nil && !errors.Is(err, ErrNotCertified) {
			return nil, err
		}
		adds = append(adds, more...)
	}
	return id, m.commit(ctx, id, change{add: adds, policy: pol})
}

// Add adds every device of each user.
func (m *Manager) Add(ctx context.Context, group []byte, users ...string) error {
	if err := m.allowed(ctx, group, ActAdd); err != nil {
		return err
	}
	adds, err := m.fetchAdditions(ctx, group, users)
	if err != nil {
		return err
	}
	return m.commit(ctx, group, change{add: adds})
}

// Update refreshes this device's keys in the group with an empty commit
// (its UpdatePath): what an attacker learned of its past keys stops
// being of use.
func (m *Manager) Update(ctx context.Context, group []byte) error {
	return m.commit(ctx, group, change{})
}

// JoinExternal joins, by external commit, a group another device of this
// user is in (this device was linked since): the relay hands the group's
// GroupInfo only to devices of a member account, and every member checks
// that the joiner is a user already in the group. A commit that lost its
// epoch is redone from the new GroupInfo.
func (m *Manager) JoinExternal(ctx context.Context, group []byte) error {
	return m.joinExternal(ctx, group, false)
}

// joinExternal joins by external commit; rejoin: this device is in the
// group already (forkcheck.go), its old leaf is replaced.
func (m *Manager) joinExternal(ctx context.Context, group []byte, rejoin bool) error {
	return m.joinExternalChecked(ctx, group, rejoin, nil)
}

// joinExternalChecked joins by external commit if check (when set)
// accepts the group it would join.
func (m *Manager) joinExternalChecked(ctx context.Context, group []byte, rejoin bool, check func(*mls.Group) error) error {
	r, err := m.relay()
	if err != nil {
		return err
	}
	identity, seed, err := m.ownIdentity(ctx)
	if err != nil {
		return err
	}
	for range m.opts.MaxRetries {
		gi, err := r.GroupInfo(ctx, group)
		if err != nil {
			return fmt.Errorf("groups: group info: %w", err)
		}
		if len(gi.GroupInfo) == 0 && gi.Size > 0 {
			gi.GroupInfo, err = readLarge(ctx, r, group, 0, gi.Size)
			if errors.Is(err, errChanged) {
				continue
			}
			if err != nil {
				return err
			}
		}
		if len(gi.GroupInfo) == 0 {
			return fmt.Errorf("groups: the relay keeps no group info for this epoch (too large); ask a member to add this device")
		}
		v := m.validator()
		g, commit, err := mls.JoinExternalWithOptions(gi.GroupInfo, identity, seed, &mls.ExternalJoinOptions{CredentialValidator: v, SupportedExtensions: supportedExtensions, Resync: rejoin})
		if errors.Is(err, mls.ErrCredentialRejected) {
			return m.refused(group, v, "joining", err)
		}
		if err != nil {
			return fmt.Errorf("groups: external join: %w", err)
		}
		if !bytes.Equal(g.GroupID(), group) {
			return fmt.Errorf("groups: the relay served another group's info")
		}
		if check != nil {
			if err := check(g); err != nil {
				return err
			}
		}
		if !rejoin && !slices.ContainsFunc(members(g), func(mb Member) bool { return mb.Username == m.self.Username && mb.DeviceID != m.self.DeviceID }) {
			return fmt.Errorf("%w: none of your other devices is in this group", ErrNotMember)
		}
		req := &wire.GroupCommitRequest{GroupId: group, Epoch: g.Epoch() - 1, Commit: commit, External: true}
		if req.GroupInfo, err = g.GroupInfo(); err != nil {
			return err
		}
		if err := fitHandshake(req); err != nil {
			return err
		}
		resp, err := sendCommit(ctx, r, req)
		if err != nil {
			return fmt.Errorf("groups: sending the external commit: %w", err)
		}
		if resp.Accepted {
			m.mu.Lock()
			rec := &record{}
			if old, _, _ := m.load(ctx, group); old != nil {
				rec.Name = old.Name // a rejoin keeps the local name
			}
			err := m.save(ctx, group, rec, g)
			if err == nil {
				err = m.rememberEpoch(ctx, group, g.Epoch(), authenticatorCheck(g), commit)
			}
			m.mu.Unlock()
			if err == nil {
				m.emit(Event{Kind: EventJoined, Group: group, Detail: fmt.Sprintf("joined a group of %d devices", len(g.Members()))})
			}
			return err
		}
	}
	return ErrCommitRace
}

// Remove removes every device of each user.
func (m *Manager) Remove(ctx context.Context, group []byte, users ...string) error {
	if err := m.allowed(ctx, group, ActRemove); err != nil {
		return err
	}
	return m.commit(ctx, group, change{remove: users})
}

// commit makes the change as a commit, sends it, and applies it once the
// relay accepted it; when another member's commit won the epoch, it
// processes that one (and whatever else waits) and tries again on top.
func (m *Manager) commit(ctx context.Context, group []byte, ch change) error {
	r, err := m.relay()
	if err != nil {
		return err
	}
	for range m.opts.MaxRetries {
		if err := m.resolvePending(ctx, group); err != nil {
			return err
		}
		m.mu.Lock()
		rec, g, err := m.load(ctx, group)
		m.mu.Unlock()
		if err != nil {
			return err
		}
		if rec.Quarantine != nil {
			return ErrQuarantined
		}
		v := m.validator()
		g.SetCredentialValidator(v)
		opts := mls.CommitOptions{}
		req := &wire.GroupCommitRequest{GroupId: group, Epoch: g.Epoch()}
		for _, a := range ch.add {
			opts.Add = append(opts.Add, a.kp)
			req.Added = append(req.Added, &wire.GroupDevice{Username: a.user, DeviceId: a.device})
		}
		gone, err := m.goneDevices(ctx, r, g)
		if err != nil {
			return err
		}
		if err := m.commitPolicy(g, ch, gone, &opts); err != nil {
			return err
		}
		asked := 0
		for _, mb := range members(g) {
			if mb.Leaf == g.LeafIndex() {
				continue
			}
			explicit := slices.Contains(ch.remove, mb.Username)
			if explicit {
				asked++
			}
			if explicit || gone[mb.Leaf] {
				opts.Remove = append(opts.Remove, mb.Leaf)
				req.Removed = append(req.Removed, &wire.GroupDevice{Username: mb.Username, DeviceId: mb.DeviceID})
			}
		}
		if len(ch.remove) > 0 && asked == 0 {
			return fmt.Errorf("%w: %v", ErrNotMember, ch.remove)
		}
		p, err := g.Commit(opts)
		if errors.Is(err, mls.ErrCredentialRejected) {
			return m.refused(group, v, "adding", err)
		}
		if err != nil {
			return fmt.Errorf("groups: commit: %w", err)
		}
		req.Commit, req.Welcome = p.Commit, p.Welcome
		if req.GroupInfo, err = nextGroupInfo(g, p); err != nil {
			return err
		}
		if err := fitHandshake(req); err != nil {
			p.Discard()
			return err
		}
		// Kept before it is sent: if the answer is lost, the commit is
		// resent and applied once the relay says it took it.
		if moved, err := m.keepPending(ctx, group, g.Epoch(), p, req); err != nil || moved {
			p.Discard()
			if err != nil {
				return err
			}
			continue
		}
		resp, err := sendCommit(ctx, r, req)
		if err != nil {
			p.Discard()
			return fmt.Errorf("groups: sending the commit (it is resent at the next sync): %w", err)
		}
		if resp.Accepted {
			return m.applyPending(ctx, group, g.Epoch(), p, v)
		}
		// Another commit won: take it (and anything before it), then redo
		// the change on top.
		p.Discard()
		if err := m.dropPending(ctx, group); err != nil {
			return err
		}
		m.log.Debug("commit lost its epoch; retrying on top of the winner", "epoch", req.Epoch, "now", resp.Epoch)
		if _, err := m.Sync(ctx); err != nil {
			return err
		}
	}
	return ErrCommitRace
}

// keepPending stores p and its request in the group's record, unless the
// group left epoch meanwhile (moved).
func (m *Manager) keepPending(ctx context.Context, group []byte, epoch uint64, p *mls.PendingCommit, req *wire.GroupCommitRequest) (moved bool, err error) {
	pb, err := p.MarshalBinary()
	if err != nil {
		return false, err
	}
	rb, err := proto.Marshal(req)
	if err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, cur, err := m.load(ctx, group)
	if err != nil {
		return false, err
	}
	if cur.Epoch() != epoch {
		return true, nil
	}
	rec.Pending, rec.PendingRequest = pb, rb
	return false, m.save(ctx, group, rec, nil)
}

// applyPending moves the group to the epoch of its accepted commit p.
func (m *Manager) applyPending(ctx context.Context, group []byte, epoch uint64, p *mls.PendingCommit, v mls.CredentialValidator) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, cur, err := m.load(ctx, group)
	if err != nil {
		return err
	}
	if cur.Epoch() != epoch {
		if cur.Epoch() == epoch+1 && rec.Pending == nil {
			p.Discard() // applied already, by a sync that resent it meanwhile
			return nil
		}
		return fmt.Errorf("groups: group moved to epoch %d while the commit for %d was accepted", cur.Epoch(), epoch)
	}
	cur.SetCredentialValidator(v)
	if err := cur.Apply(p); err != nil {
		return err
	}
	rec.Pending, rec.PendingRequest = nil, nil
	if err := m.save(ctx, group, rec, cur); err != nil {
		return err
	}
	if err := m.rememberEpoch(ctx, group, cur.Epoch(), authenticatorCheck(cur), p.Commit); err != nil {
		return err
	}
	m.emit(Event{Kind: EventChanged, Group: group, Detail: fmt.Sprintf("the group changed: %d devices, epoch %d", len(cur.Members()), cur.Epoch())})
	return nil
}

// dropPending forgets the group's pending commit.
func (m *Manager) dropPending(ctx context.Context, group []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, _, err := m.load(ctx, group)
	if err != nil {
		return err
	}
	if rec.Pending == nil {
		return nil
	}
	rec.Pending, rec.PendingRequest = nil, nil
	return m.save(ctx, group, rec, nil)
}

// resolvePending learns what became of a commit whose answer was lost by
// sending it again: the relay accepts a commit it took before (or takes
// it now), and it is applied; if another commit won, it is dropped.
func (m *Manager) resolvePending(ctx context.Context, group []byte) error {
	m.mu.Lock()
	rec, g, err := m.load(ctx, group)
	m.mu.Unlock()
	if err != nil || rec.Pending == nil {
		if errors.Is(err, ErrRemovedHere) {
			return nil
		}
		return err
	}
	p, err := mls.UnmarshalPendingCommit(rec.Pending)
	if err != nil {
		return fmt.Errorf("groups: pending commit: %w", err)
	}
	var req wire.GroupCommitRequest
	if err := proto.Unmarshal(rec.PendingRequest, &req); err != nil {
		return fmt.Errorf("groups: pending commit request: %w", err)
	}
	if req.Epoch != g.Epoch() {
		p.Discard()
		return m.dropPending(ctx, group)
	}
	r, err := m.relay()
	if err != nil {
		return err
	}
	resp, err := sendCommit(ctx, r, &req)
	if err != nil {
		p.Discard()
		return fmt.Errorf("groups: resending a commit: %w", err)
	}
	if resp.Accepted {
		return m.applyPending(ctx, group, req.Epoch, p, m.validator())
	}
	p.Discard()
	return m.dropPending(ctx, group)
}

// goneDevices finds the leaves of devices that are no longer their
// account's (removed, wiped or revoked, or the whole account revoked), by
// the relay's device lists: every commit removes them. A relay that lies
// can have a device removed (members see it go), not one kept in: the
// device's keys stay its own, but it no longer receives the group's
// messages from an honest relay.
func (m *Manager) goneDevices(ctx context.Context, r Relay, g *mls.Group) (map[uint32]bool, error) {
	byUser := map[string][]Member{}
	for _, mb := range members(g) {
		if mb.Leaf != g.LeafIndex() {
			byUser[mb.Username] = append(byUser[mb.Username], mb)
		}
	}
	gone := map[uint32]bool{}
	for u, ms := range byUser {
		list, err := r.GetDevices(ctx, u)
		active := map[uint32]bool{}
		switch {
		case err == nil:
			for _, d := range list.Devices {
				active[d.DeviceId] = true
			}
		case isNotFound(err) || isRevoked(err):
			// The account is gone: all its devices go.
		default:
			return nil, fmt.Errorf("groups: devices of %s: %w", u, err)
		}
		for _, mb := range ms {
			if !active[mb.DeviceID] {
				gone[mb.Leaf] = true
			}
		}
	}
	return gone, nil
}

// nextGroupInfo is the GroupInfo of the epoch p starts, for joins by
// external commit; g is left as it was.
func nextGroupInfo(g *mls.Group, p *mls.PendingCommit) ([]byte, error) {
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	gb, err := g.MarshalBinary()
	if err != nil {
		return nil, err
	}
	pc, err := mls.UnmarshalPendingCommit(pb)
	if err != nil {
		return nil, err
	}
	next, err := mls.UnmarshalGroup(gb)
	if err != nil {
		return nil, err
	}
	if err := next.Apply(pc); err != nil {
		return nil, err
	}
	return next.GroupInfo()
}

func isRevoked(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.Code == wire.ErrorCode_REVOKED
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.Code == wire.ErrorCode_NOT_FOUND
}

// payloadText starts a group message of an older build: the type byte,
// then the text (content.go).
const payloadText = 1
