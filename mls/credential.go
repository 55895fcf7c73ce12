package mls

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Credential types (RFC 9420 §17.5) that Credential.Type may hold.
const (
	CredentialBasic uint16 = credentialBasic
	CredentialX509  uint16 = credentialX509
)

// Credential is a leaf's credential (RFC 9420 §5.3) as shown to a
// CredentialValidator.
type Credential struct {
	Type         uint16
	Identity     []byte   // CredentialBasic
	Certificates [][]byte // CredentialX509, end-entity first
}

// CredentialValidator is the application's check that a credential is
// acceptable and binds the given signature public key (RFC 9420 §5.3.1).
// It is called for every leaf that enters the group or changes: the
// creator's own leaf, every leaf of a tree being joined, KeyPackages
// being added, Update proposals, the leaf of every commit's UpdatePath
// and of external commits. old is the credential the leaf held before
// (an Update or a commit's UpdatePath replacing a member's leaf) and nil
// for a leaf that is new to the group, so the application can check that
// the new credential is a valid successor (RFC 9420 §5.3.3). Whatever the
// validator says, the library itself refuses a replacement that changes
// the credential type or, for a basic credential, the identity
// (ErrIdentityChanged). An error rejects the operation and leaves the
// group unchanged.
type CredentialValidator interface {
	ValidateCredential(old *Credential, cred Credential, signatureKey []byte) error
}

// CredentialValidatorFunc adapts a function to CredentialValidator.
type CredentialValidatorFunc func(old *Credential, cred Credential, signatureKey []byte) error

// ValidateCredential calls f.
func (f CredentialValidatorFunc) ValidateCredential(old *Credential, cred Credential, signatureKey []byte) error {
	return f(old, cred, signatureKey)
}

// ErrCredentialRejected wraps the error of the application's
// CredentialValidator.
var ErrCredentialRejected = errors.New("mls: credential rejected")

// ErrIdentityChanged is returned when an Update or a commit's UpdatePath
// would give a member another identity: a different credential type or,
// for a basic credential, a different identity. A member's identity is
// fixed for as long as it is in the group; another identity joins as a
// new member.
var ErrIdentityChanged = errors.New("mls: a member's identity cannot change inside a group")

// LifetimeTolerance is the clock skew allowed when checking the lifetime
// of a received KeyPackage's leaf: it is accepted from not_before minus
// this much until not_after plus this much. KeyPackages this member adds
// itself get no tolerance.
const LifetimeTolerance = 10 * time.Minute

// GroupOptions configures a group created by NewGroupWithOptions.
type GroupOptions struct {
	// CredentialValidator, if set, vets every new or changed leaf.
	CredentialValidator CredentialValidator
	// Now replaces time.Now for lifetime checks.
	Now func() time.Time
	// SupportedExtensions lists non-default extension types the creator
	// supports (KeyPackageOptions.SupportedExtensions).
	SupportedExtensions []uint16
}

// NewGroupWithOptions is NewGroup with options; the creator's own
// credential goes through the validator too.
func NewGroupWithOptions(cs CipherSuite, groupID, identity, signatureKey []byte, opts *GroupOptions) (*Group, error) {
	if opts == nil {
		opts = &GroupOptions{}
	}
	g, err := newGroup(cs, groupID, identity, signatureKey, opts.Now, opts.SupportedExtensions)
	if err != nil {
		return nil, err
	}
	g.st.validator = opts.CredentialValidator
	if err := g.st.checkCredential(nil, g.st.tree.leaf(0)); err != nil {
		return nil, err
	}
	return g, nil
}

// SetCredentialValidator installs the application's credential check
// (nil removes it). A validator is not part of the persisted state: set
// it again after UnmarshalGroup.
func (g *Group) SetCredentialValidator(v CredentialValidator) { g.st.validator = v }

func publicCredential(c *credential) Credential {
	out := Credential{Type: c.typ, Identity: bytes.Clone(c.identity)}
	for _, cert := range c.certificates {
		out.Certificates = append(out.Certificates, bytes.Clone(cert))
	}
	return out
}

// checkCredential vets leaf l, which replaces old (nil for a leaf new to
// the group): the identity may not change, then the application's
// validator has its say.
func (g *groupState) checkCredential(old, l *leafNode) error {
	if l == nil {
		return nil
	}
	var prev *Credential
	if old != nil {
		if err := sameIdentity(&old.credential, &l.credential); err != nil {
			return err
		}
		c := publicCredential(&old.credential)
		prev = &c
	}
	if g.validator == nil {
		return nil
	}
	if err := g.validator.ValidateCredential(prev, publicCredential(&l.credential), bytes.Clone(l.signatureKey)); err != nil {
		return fmt.Errorf("%w: %w", ErrCredentialRejected, err)
	}
	return nil
}

// sameIdentity refuses a replacement credential of another type or, for
// basic credentials, another identity. X.509 chains are renewed with new
// bytes; whether a new chain names the same subject is the validator's
// call (it gets both).
func sameIdentity(old, next *credential) error {
	if old.typ != next.typ {
		return fmt.Errorf("%w: credential type %d replaced by %d", ErrIdentityChanged, old.typ, next.typ)
	}
	if old.typ == credentialBasic && !bytes.Equal(old.identity, next.identity) {
		return fmt.Errorf("%w: basic identity replaced", ErrIdentityChanged)
	}
	return nil
}

// checkTreeCredentials runs the validator on every leaf of the tree.
func (g *groupState) checkTreeCredentials() error {
	if g.validator == nil {
		return nil
	}
	for i := uint32(0); i < g.tree.size(); i++ {
		if err := g.checkCredential(nil, g.tree.leaf(i)); err != nil {
			return fmt.Errorf("leaf %d: %w", i, err)
		}
	}
	return nil
}

// checkReceivedLifetime verifies a received KeyPackage leaf's lifetime
// against the clock with LifetimeTolerance (RFC 9420 §7.3).
func (g *groupState) checkReceivedLifetime(l *leafNode) error {
	if l.source != sourceKeyPackage {
		return nil
	}
	now := g.clock()
	tol := int64(LifetimeTolerance / time.Second)
	t := max(now.Unix(), 0)
	lo, hi := uint64(max(t-tol, 0)), uint64(t+tol)
	if hi < l.notBefore || lo > l.notAfter {
		return fmt.Errorf("%w: leaf outside its lifetime", ErrInvalidMessage)
	}
	return nil
}

// sameCredential reports whether two credentials are identical.
func sameCredential(a, b *credential) bool {
	ab, err1 := marshal(a)
	bb, err2 := marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}
