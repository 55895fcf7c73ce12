package release

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// Errors of Policy.Check a caller may branch on (with ErrBadSignature,
// ErrNotLogged, ErrNotWitness, ErrMalformed).
var (
	ErrNotApproved = errors.New("release: not approved by the organization")
	ErrRollback    = errors.New("release: not newer than the running version")
	ErrTooOld      = errors.New("release: the running version is below the release's minimum")
	ErrPlatform    = errors.New("release: built for another platform")
)

// Candidate is what a mirror serves for one release: none of it is trusted.
type Candidate struct {
	Manifest   []byte // the encoded manifest
	Signature  []byte // the release key's signature over it
	Leaves     []byte // log/leaves
	Checkpoint []byte // log/checkpoint
}

// Policy is what the running device pins and knows.
type Policy struct {
	ReleaseKey ed25519.PublicKey // pinned in the running binary
	// The organization's approvals: manifest hashes from approvals whose
	// org-key signature the caller checked, and the witness key they name.
	Approved   [][sha256.Size]byte
	WitnessKey ed25519.PublicKey
	Running    string // the running version
	Platform   string // GOOS/GOARCH of the device
}

// Check applies the whole rule to a candidate and returns the manifest and
// its log position when every check passes. Each check stands on its own:
// none can be satisfied by what the mirror chose to serve.
func (p *Policy) Check(c Candidate) (*Manifest, Position, error) {
	if err := VerifySignature(p.ReleaseKey, c.Manifest, c.Signature); err != nil {
		return nil, Position{}, err
	}
	m, err := ParseManifest(c.Manifest)
	if err != nil {
		return nil, Position{}, err
	}
	if m.Platform != p.Platform {
		return nil, Position{}, fmt.Errorf("%w: %s, this device is %s", ErrPlatform, m.Platform, p.Platform)
	}
	h := Hash(c.Manifest)
	if !p.approved(h) {
		return nil, Position{}, fmt.Errorf("%w: %s (%s)", ErrNotApproved, m.Version, m.Platform)
	}
	cp, err := ParseCheckpoint(c.Checkpoint)
	if err != nil {
		return nil, Position{}, fmt.Errorf("%w: %w", ErrNotLogged, err)
	}
	if err := cp.Verify(p.ReleaseKey, p.WitnessKey); err != nil {
		return nil, Position{}, err
	}
	leaves, err := ParseLeaves(c.Leaves)
	if err != nil {
		return nil, Position{}, fmt.Errorf("%w: %w", ErrNotLogged, err)
	}
	pos, err := Locate(cp, leaves, h)
	if err != nil {
		return nil, Position{}, err
	}
	if CompareVersions(m.Version, p.Running) <= 0 {
		return nil, Position{}, fmt.Errorf("%w: %s, running %s", ErrRollback, m.Version, p.Running)
	}
	if CompareVersions(p.Running, m.MinVersion) < 0 {
		return nil, Position{}, fmt.Errorf("%w: running %s, %s needs at least %s", ErrTooOld, p.Running, m.Version, m.MinVersion)
	}
	return m, pos, nil
}

func (p *Policy) approved(h [sha256.Size]byte) bool {
	ok := false
	for _, a := range p.Approved {
		if subtle.ConstantTimeCompare(a[:], h[:]) == 1 {
			ok = true
		}
	}
	return ok
}
