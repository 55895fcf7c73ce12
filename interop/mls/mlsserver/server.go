package mlsserver

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"sotto/interop/mls/mlsclient"
	"sotto/mls"
)

// Name is the implementation name the server reports to the runner.
const Name = "Sotto"

// member is one group state the runner refers to by a state id.
type member struct {
	group *mls.Group
	// encrypt sends this member's commits as PrivateMessages.
	encrypt bool
	// pending is the commit this member created and has not applied yet.
	pending *mls.PendingCommit
	// own holds the proposals this member sent in the current epoch; the
	// group already caches them, so they are not handled again.
	own map[string]bool
}

// newEpoch forgets what belonged to the epoch the member just left.
func (m *member) newEpoch() {
	m.pending = nil
	m.own = map[string]bool{}
}

// transaction is a published KeyPackage waiting for its Welcome.
type transaction struct {
	keyPackage []byte
	keys       mls.PrivateKeys
	psks       map[string][]byte
}

// Server implements mlsclient.MLSClientServer over sotto/mls. The zero
// value is not usable; call New.
type Server struct {
	mlsclient.UnimplementedMLSClientServer

	log *slog.Logger

	mu      sync.Mutex
	nextID  uint32
	states  map[uint32]*member
	txs     map[uint32]*transaction
	reinits map[uint32]*reinit
	signers map[uint32]*signer
}

var _ mlsclient.MLSClientServer = (*Server)(nil)

// New returns a server with no state. log receives one line per failed
// call; nil discards it.
func New(log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{log: log, states: map[uint32]*member{}, txs: map[uint32]*transaction{}, reinits: map[uint32]*reinit{}, signers: map[uint32]*signer{}}
}

// newID returns a fresh id; state, transaction, reinit and signer ids
// never collide, so StorePSK can tell states and transactions apart. Callers hold mu.
func (s *Server) newID() uint32 {
	s.nextID++
	return s.nextID
}

// state returns the member under id. Callers hold mu.
func (s *Server) state(id uint32) (*member, error) {
	m, ok := s.states[id]
	if !ok {
		return nil, unknownID("state", id)
	}
	return m, nil
}

// addState stores a new member and returns its id. Callers hold mu.
func (s *Server) addState(g *mls.Group, encrypt bool) uint32 {
	id := s.newID()
	s.states[id] = &member{group: g, encrypt: encrypt, own: map[string]bool{}}
	return id
}

// suite checks that a requested cipher suite is one sotto/mls implements.
func suite(v uint32) (mls.CipherSuite, error) {
	cs := mls.CipherSuite(v)
	if v > 0xffff || !cs.Supported() {
		return 0, unimplemented("cipher suite " + cs.String())
	}
	return cs, nil
}

// leafOf finds the leaf of the member whose basic identity is id.
func leafOf(g *mls.Group, id []byte) (uint32, error) {
	for _, m := range g.Members() {
		if m.Identity != nil && bytes.Equal(m.Identity, id) {
			return m.Index, nil
		}
	}
	return 0, invalid("no member with identity %q", id)
}

// Name reports the implementation's name.
func (s *Server) Name(context.Context, *mlsclient.NameRequest) (*mlsclient.NameResponse, error) {
	return &mlsclient.NameResponse{Name: Name}, nil
}

// SupportedCiphersuites lists the suites sotto/mls implements.
func (s *Server) SupportedCiphersuites(context.Context, *mlsclient.SupportedCiphersuitesRequest) (*mlsclient.SupportedCiphersuitesResponse, error) {
	var out []uint32
	for v := uint32(1); v <= 7; v++ {
		if mls.CipherSuite(v).Supported() {
			out = append(out, v)
		}
	}
	return &mlsclient.SupportedCiphersuitesResponse{Ciphersuites: out}, nil
}

// CreateGroup starts a one-member group.
func (s *Server) CreateGroup(_ context.Context, req *mlsclient.CreateGroupRequest) (*mlsclient.CreateGroupResponse, error) {
	cs, err := suite(req.CipherSuite)
	if err != nil {
		return nil, err
	}
	sig, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		return nil, protocolError("create group", err)
	}
	g, err := mls.NewGroup(cs, req.GroupId, req.Identity, sig)
	clear(sig)
	if err != nil {
		return nil, protocolError("create group", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &mlsclient.CreateGroupResponse{StateId: s.addState(g, req.EncryptHandshake)}, nil
}

// CreateKeyPackage publishes a KeyPackage and keeps its keys until the
// Welcome that answers it.
func (s *Server) CreateKeyPackage(_ context.Context, req *mlsclient.CreateKeyPackageRequest) (*mlsclient.CreateKeyPackageResponse, error) {
	cs, err := suite(req.CipherSuite)
	if err != nil {
		return nil, err
	}
	sig, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		return nil, protocolError("create key package", err)
	}
	kp, keys, err := mls.NewKeyPackage(cs, req.Identity, sig)
	clear(sig)
	if err != nil {
		return nil, protocolError("create key package", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.newID()
	s.txs[id] = &transaction{keyPackage: kp, keys: keys, psks: map[string][]byte{}}
	// The runner's schema returns the private keys (for test
	// transcripts); they are test keys of a throwaway client.
	return &mlsclient.CreateKeyPackageResponse{
		TransactionId:  id,
		KeyPackage:     kp,
		InitPriv:       keys.Init,
		EncryptionPriv: keys.Encryption,
		SignaturePriv:  keys.Signature,
	}, nil
}

// JoinGroup joins from a Welcome answering a transaction's KeyPackage.
func (s *Server) JoinGroup(_ context.Context, req *mlsclient.JoinGroupRequest) (*mlsclient.JoinGroupResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, ok := s.txs[req.TransactionId]
	if !ok {
		return nil, unknownID("transaction", req.TransactionId)
	}
	opts := &mls.JoinOptions{ExternalPSKs: tx.psks}
	if len(req.RatchetTree) > 0 {
		opts.RatchetTree = req.RatchetTree
	}
	g, err := mls.Join(req.Welcome, tx.keyPackage, tx.keys, opts)
	if err != nil {
		return nil, protocolError("join group", err)
	}
	delete(s.txs, req.TransactionId)
	id := s.addState(g, req.EncryptHandshake)
	for psk, v := range tx.psks {
		g.AddExternalPSK([]byte(psk), v)
	}
	return &mlsclient.JoinGroupResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

// ExternalJoin joins from a GroupInfo with an external commit, which may
// inject PSKs and remove the joiner's prior leaf (same identity).
func (s *Server) ExternalJoin(_ context.Context, req *mlsclient.ExternalJoinRequest) (*mlsclient.ExternalJoinResponse, error) {
	h, err := readGroupInfoHeader(req.GroupInfo)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	cs, err := suite(uint32(h.suite))
	if err != nil {
		return nil, err
	}
	sig, err := mls.GenerateSignatureKey(cs)
	if err != nil {
		return nil, protocolError("external join", err)
	}
	opts := &mls.ExternalJoinOptions{Resync: req.RemovePrior}
	if len(req.RatchetTree) > 0 {
		opts.RatchetTree = req.RatchetTree
	}
	if len(req.Psks) > 0 {
		opts.PSKs = make(map[string][]byte, len(req.Psks))
		for _, p := range req.Psks {
			opts.PSKs[string(p.PskId)] = p.PskSecret
		}
	}
	g, commit, err := mls.JoinExternalWithOptions(req.GroupInfo, req.Identity, sig, opts)
	clear(sig)
	if err != nil {
		return nil, protocolError("external join", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &mlsclient.ExternalJoinResponse{
		StateId:            s.addState(g, req.EncryptHandshake),
		Commit:             commit,
		EpochAuthenticator: g.EpochAuthenticator(),
	}, nil
}

// GroupInfo publishes a signed GroupInfo (always carrying the ratchet
// tree) and, when asked, the tree on its own too.
func (s *Server) GroupInfo(_ context.Context, req *mlsclient.GroupInfoRequest) (*mlsclient.GroupInfoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	gi, err := m.group.GroupInfo()
	if err != nil {
		return nil, protocolError("group info", err)
	}
	resp := &mlsclient.GroupInfoResponse{GroupInfo: gi}
	if req.ExternalTree {
		if resp.RatchetTree, err = m.group.RatchetTree(); err != nil {
			return nil, protocolError("ratchet tree", err)
		}
	}
	return resp, nil
}

// StateAuth returns the epoch authenticator.
func (s *Server) StateAuth(_ context.Context, req *mlsclient.StateAuthRequest) (*mlsclient.StateAuthResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	return &mlsclient.StateAuthResponse{StateAuthSecret: m.group.EpochAuthenticator()}, nil
}

// Export derives an exporter secret.
func (s *Server) Export(_ context.Context, req *mlsclient.ExportRequest) (*mlsclient.ExportResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	if req.KeyLength > 0xffff {
		return nil, invalid("export length %d too large", req.KeyLength)
	}
	out, err := m.group.Export(req.Label, req.Context, int(req.KeyLength))
	if err != nil {
		return nil, protocolError("export", err)
	}
	return &mlsclient.ExportResponse{ExportedSecret: out}, nil
}

// Protect encrypts application data.
func (s *Server) Protect(_ context.Context, req *mlsclient.ProtectRequest) (*mlsclient.ProtectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	ct, err := m.group.SealWith(req.Plaintext, mls.SealOptions{AuthenticatedData: req.AuthenticatedData})
	if err != nil {
		return nil, protocolError("protect", err)
	}
	return &mlsclient.ProtectResponse{Ciphertext: ct}, nil
}

// Unprotect decrypts an application message.
func (s *Server) Unprotect(_ context.Context, req *mlsclient.UnprotectRequest) (*mlsclient.UnprotectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := s.state(req.StateId)
	if err != nil {
		return nil, err
	}
	r, err := m.group.Handle(req.Ciphertext)
	if err != nil {
		return nil, protocolError("unprotect", err)
	}
	if r.Kind != mls.ApplicationContent {
		return nil, invalid("unprotect: not an application message")
	}
	return &mlsclient.UnprotectResponse{AuthenticatedData: r.AuthenticatedData, Plaintext: r.Data}, nil
}

// StorePSK registers an external PSK with a member or a pending join.
func (s *Server) StorePSK(_ context.Context, req *mlsclient.StorePSKRequest) (*mlsclient.StorePSKResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := req.StateOrTransactionId
	if m, ok := s.states[id]; ok {
		m.group.AddExternalPSK(req.PskId, req.PskSecret)
		return &mlsclient.StorePSKResponse{}, nil
	}
	if tx, ok := s.txs[id]; ok {
		tx.psks[string(req.PskId)] = append([]byte(nil), req.PskSecret...)
		return &mlsclient.StorePSKResponse{}, nil
	}
	return nil, unknownID("state or transaction", id)
}

// Free forgets a state.
func (s *Server) Free(_ context.Context, req *mlsclient.FreeRequest) (*mlsclient.FreeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, req.StateId)
	return &mlsclient.FreeResponse{}, nil
}
