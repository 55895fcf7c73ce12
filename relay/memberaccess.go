package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// The organization's member access key (ORG_MEMBER_ACCESS). The org admin
// publishes one access key for the whole organization, signed with the
// org key; the relay keeps the newest and accepts it, besides the
// recipient's own access key, on a sealed send to any account. Presenting
// it proves that the sender holds the organization's key, not who the
// sender is: it is the same for every member (every client checks the org
// signature, so a relay cannot hand each device its own key to tell
// senders apart). It lets the first message to a contact, before their
// profile key is known, go sealed.

// parseMemberAccess decodes and checks an ORG_MEMBER_ACCESS body.
func parseMemberAccess(body []byte) (*wire.MemberAccess, error) {
	var m wire.MemberAccess
	if err := proto.Unmarshal(body, &m); err != nil {
		return nil, badRequest("bad member access document")
	}
	if m.Version == 0 || len(m.AccessKey) != wire.AccessKeySize {
		return nil, badRequest("member access document: version 0 or key not %d bytes", wire.AccessKeySize)
	}
	return &m, nil
}

// memberAccess returns the member access document the relay keeps, or nil.
func (s *Server) memberAccess(ctx context.Context) (*wire.MemberAccess, error) {
	ds, ok := s.dir.(OrgDocumentStore)
	if !ok {
		return nil, nil
	}
	b, err := ds.OrgDocument(ctx, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, "")
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	d, err := decodeOrgDocument(b)
	if err != nil {
		return nil, err
	}
	m, err := parseMemberAccess(d.Body)
	if err != nil {
		return nil, fmt.Errorf("relay: stored member access document: %w", err)
	}
	return m, nil
}

// checkMemberAccessPublish refuses a member access document that does not
// supersede the one kept: a replayed old document (still validly signed)
// would otherwise bring back a key the admin retired.
func (s *Server) checkMemberAccessPublish(ctx context.Context, body []byte) error {
	m, err := parseMemberAccess(body)
	if err != nil {
		return err
	}
	cur, err := s.memberAccess(ctx)
	if err != nil {
		return err
	}
	if cur != nil && m.Version <= cur.Version {
		return badRequest("member access version %d is not newer than the kept %d", m.Version, cur.Version)
	}
	return nil
}

// memberCache keeps the member access document for the sealed send path,
// which reads it on every send: for ttl, dropped at once when this relay
// stores a new one. Past ttl (but not yet twice that) the fast path still
// gets the kept document while one background reload replaces it, as the
// directory cache does (dircache.go): without that, every sealed send
// arriving in the moment the document expired (on a busy relay, all of
// them, every ttl) went down the general path, each loading the document
// itself and waiting for its own commit, a stall of every sealed
// connection at once. A document published through another relay
// process is seen within ttl and one reload: the reload starts with the
// first send after ttl.
type memberCache struct {
	load func(ctx context.Context) (*wire.MemberAccess, error)
	ttl  time.Duration
	now  func() time.Time
	// goReload runs a background reload (owned by the server's wait
	// group; the server's context stops its load).
	goReload func(func())

	mu         sync.Mutex
	doc        *wire.MemberAccess // nil: none kept
	loaded     time.Time          // zero: nothing cached
	gen        uint64             // counts invalidations
	refreshing bool               // a background reload is under way
}

// get returns the document; with wait false only a cached one (past ttl,
// the kept one while a reload runs), else errCacheMiss.
func (m *memberCache) get(ctx context.Context, wait bool) (*wire.MemberAccess, error) {
	now := m.now()
	m.mu.Lock()
	doc, loaded, gen := m.doc, m.loaded, m.gen
	age := now.Sub(loaded)
	if !loaded.IsZero() && age < m.ttl {
		m.mu.Unlock()
		return doc, nil
	}
	if !wait {
		if loaded.IsZero() || age >= 2*m.ttl {
			m.mu.Unlock()
			return nil, errCacheMiss
		}
		reload := !m.refreshing && m.goReload != nil
		if reload {
			m.refreshing = true
		}
		m.mu.Unlock()
		if reload {
			m.goReload(func() { m.reload(ctx, gen) })
		}
		return doc, nil
	}
	m.mu.Unlock()
	doc, err := m.load(ctx)
	if err != nil {
		return nil, err
	}
	m.store(doc, now, gen)
	return doc, nil
}

// reload replaces the kept document (the background reload get starts).
func (m *memberCache) reload(ctx context.Context, gen uint64) {
	now := m.now()
	doc, err := m.load(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshing = false
	switch {
	case m.gen != gen:
		// An invalidation raced with the load; it dropped the document.
	case err != nil:
		m.doc, m.loaded = nil, time.Time{} // the next send loads it, or reports the error
	default:
		m.doc, m.loaded = doc, now
	}
}

// store keeps doc, loaded at now, unless an invalidation came since gen.
func (m *memberCache) store(doc *wire.MemberAccess, now time.Time, gen uint64) {
	m.mu.Lock()
	if m.gen == gen {
		m.doc, m.loaded = doc, now
	}
	m.mu.Unlock()
}

// invalidate drops the cached document.
func (m *memberCache) invalidate() {
	m.mu.Lock()
	m.gen++
	m.doc, m.loaded = nil, time.Time{}
	m.mu.Unlock()
}
