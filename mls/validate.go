package mls

import (
	"fmt"
	"slices"

	"sotto/mls/internal/codec"
	"sotto/mls/internal/treemath"
)

// requiredCapabilities is RequiredCapabilities of RFC 9420 §11.1.
type requiredCapabilities struct {
	extensions, proposals, credentials []uint16
}

func parseRequiredCapabilities(exts []extension) (*requiredCapabilities, error) {
	data, ok := findExtension(exts, extRequiredCaps)
	if !ok {
		return &requiredCapabilities{}, nil
	}
	r := codec.NewReader(data)
	rc := &requiredCapabilities{extensions: decodeU16s(r), proposals: decodeU16s(r), credentials: decodeU16s(r)}
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: required capabilities: %w", ErrDecode, err)
	}
	return rc, nil
}

// Default extension and proposal types need not be listed in capabilities
// (RFC 9420 §7.2).
func defaultExtension(t uint16) bool { return t >= extApplicationID && t <= extExternalSenders }
func defaultProposal(t uint16) bool  { return t >= proposalAdd && t <= proposalGroupContextExtensions }

// supports reports whether a leaf's capabilities satisfy rc.
func (c *capabilities) supports(rc *requiredCapabilities) bool {
	for _, e := range rc.extensions {
		if !defaultExtension(e) && !slices.Contains(c.extensions, e) {
			return false
		}
	}
	for _, p := range rc.proposals {
		if !defaultProposal(p) && !slices.Contains(c.proposals, p) {
			return false
		}
	}
	for _, t := range rc.credentials {
		if !slices.Contains(c.credentials, t) {
			return false
		}
	}
	return true
}

// validateLeafPolicy applies the group-independent LeafNode checks of
// RFC 9420 §7.3 other than the signature: suite and version support,
// required capabilities, and extensions listed in the capabilities.
func validateLeafPolicy(s *suite, l *leafNode, rc *requiredCapabilities) error {
	c := &l.capabilities
	if !slices.Contains(c.cipherSuites, uint16(s.id)) || !slices.Contains(c.versions, protocolVersion10) {
		return fmt.Errorf("%w: leaf does not support the group's suite or version", ErrInvalidMessage)
	}
	if !slices.Contains(c.credentials, l.credential.typ) {
		return fmt.Errorf("%w: leaf does not support its own credential type", ErrInvalidMessage)
	}
	if !c.supports(rc) {
		return fmt.Errorf("%w: leaf lacks required capabilities", ErrInvalidMessage)
	}
	for _, e := range l.extensions {
		if !defaultExtension(e.typ) && !slices.Contains(c.extensions, e.typ) {
			return fmt.Errorf("%w: leaf extension %d not in its capabilities", ErrInvalidMessage, e.typ)
		}
	}
	return nil
}

// validatePolicy checks every leaf of the tree against the group context
// (RFC 9420 §7.3): per-leaf policy, credential types supported by all
// members, unique signature keys, and encryption keys unique across all
// nodes. Signatures are checked separately.
func (t *ratchetTree) validatePolicy(ctx *groupContext) error {
	rc, err := parseRequiredCapabilities(ctx.extensions)
	if err != nil {
		return err
	}
	var leaves []*leafNode
	for i := uint32(0); i < t.size(); i++ {
		if l := t.leaf(i); l != nil {
			if err := validateLeafPolicy(t.s, l, rc); err != nil {
				return fmt.Errorf("leaf %d: %w", i, err)
			}
			for _, e := range ctx.extensions {
				if !defaultExtension(e.typ) && !slices.Contains(l.capabilities.extensions, e.typ) {
					return fmt.Errorf("%w: leaf %d does not support group extension %d", ErrInvalidMessage, i, e.typ)
				}
			}
			leaves = append(leaves, l)
		}
	}
	sigKeys := map[string]bool{}
	used := map[uint16]bool{}
	for _, l := range leaves {
		if sigKeys[string(l.signatureKey)] {
			return fmt.Errorf("%w: duplicate signature key", ErrInvalidTree)
		}
		sigKeys[string(l.signatureKey)] = true
		used[l.credential.typ] = true
	}
	for _, l := range leaves {
		for typ := range used {
			if !slices.Contains(l.capabilities.credentials, typ) {
				return fmt.Errorf("%w: credential type not supported by all members", ErrInvalidTree)
			}
		}
	}
	encKeys := map[string]bool{}
	for x := range t.nodes {
		k := t.publicKey(uint32(x))
		if k == nil {
			continue
		}
		if encKeys[string(k)] {
			return fmt.Errorf("%w: duplicate encryption key", ErrInvalidTree)
		}
		encKeys[string(k)] = true
	}
	return nil
}

// checkUnmergedChains verifies that a leaf unmerged at a parent is also
// unmerged at every non-blank node between them (RFC 9420 §12.4.3.1).
func (t *ratchetTree) checkUnmergedChains() error {
	n := t.size()
	for x := uint32(1); x < uint32(len(t.nodes)); x += 2 {
		p := t.parentAt(x)
		if p == nil {
			continue
		}
		for _, l := range p.unmergedLeaves {
			for _, y := range treemath.DirectPath(treemath.LeafNode(l), n) {
				if y == x {
					break
				}
				if q := t.parentAt(y); q != nil && !slices.Contains(q.unmergedLeaves, l) {
					return fmt.Errorf("%w: unmerged leaf %d missing below node %d", ErrInvalidTree, l, x)
				}
			}
		}
	}
	return nil
}

// maxIncrementalNodes bounds the changed nodes validateChanged checks one
// by one; beyond it a full validation is cheaper.
const maxIncrementalNodes = 64

// validateChanged applies the checks of validatePolicy to the nodes
// replaced since the tree was cloned (t.dirty), assuming the rest of the
// tree was valid under the same group context. It falls back to the full
// check for large changes.
func (t *ratchetTree) validateChanged(ctx *groupContext) error {
	seen := map[uint32]bool{}
	var changed []uint32
	for _, x := range t.dirty {
		if !seen[x] && int(x) < len(t.nodes) && t.nodes[x] != nil {
			seen[x] = true
			changed = append(changed, x)
		}
	}
	if len(changed) > maxIncrementalNodes {
		return t.validatePolicy(ctx)
	}
	rc, err := parseRequiredCapabilities(ctx.extensions)
	if err != nil {
		return err
	}
	var used []uint16 // credential types in use
	for i := uint32(0); i < t.size(); i++ {
		if l := t.leaf(i); l != nil && !slices.Contains(used, l.credential.typ) {
			used = append(used, l.credential.typ)
		}
	}
	sigKeys := map[string]uint32{} // changed leaves' signature keys
	encKeys := map[string]uint32{} // changed nodes' encryption keys
	var newTypes []uint16          // credential types of changed leaves
	for _, x := range changed {
		if l := t.nodes[x].leaf; l != nil {
			i := treemath.NodeLeaf(x)
			if err := validateLeafPolicy(t.s, l, rc); err != nil {
				return fmt.Errorf("leaf %d: %w", i, err)
			}
			for _, e := range ctx.extensions {
				if !defaultExtension(e.typ) && !slices.Contains(l.capabilities.extensions, e.typ) {
					return fmt.Errorf("%w: leaf %d does not support group extension %d", ErrInvalidMessage, i, e.typ)
				}
			}
			for _, typ := range used {
				if !slices.Contains(l.capabilities.credentials, typ) {
					return fmt.Errorf("%w: credential type not supported by all members", ErrInvalidTree)
				}
			}
			if _, dup := sigKeys[string(l.signatureKey)]; dup {
				return fmt.Errorf("%w: duplicate signature key", ErrInvalidTree)
			}
			sigKeys[string(l.signatureKey)] = x
			if !slices.Contains(newTypes, l.credential.typ) {
				newTypes = append(newTypes, l.credential.typ)
			}
		}
		k := t.publicKey(x)
		if _, dup := encKeys[string(k)]; dup {
			return fmt.Errorf("%w: duplicate encryption key", ErrInvalidTree)
		}
		encKeys[string(k)] = x
	}
	for y := range t.nodes {
		n := t.nodes[y]
		if n == nil {
			continue
		}
		if x, ok := encKeys[string(t.publicKey(uint32(y)))]; ok && x != uint32(y) {
			return fmt.Errorf("%w: duplicate encryption key", ErrInvalidTree)
		}
		if l := n.leaf; l != nil {
			if x, ok := sigKeys[string(l.signatureKey)]; ok && x != uint32(y) {
				return fmt.Errorf("%w: duplicate signature key", ErrInvalidTree)
			}
			for _, typ := range newTypes {
				if !slices.Contains(l.capabilities.credentials, typ) {
					return fmt.Errorf("%w: credential type not supported by all members", ErrInvalidTree)
				}
			}
		}
	}
	return nil
}

// validateTree validates a tree after a commit: fully when the group
// context extensions changed, otherwise only what changed.
func (t *ratchetTree) validateTree(ctx *groupContext, extensionsChanged bool) error {
	if extensionsChanged {
		return t.validatePolicy(ctx)
	}
	return t.validateChanged(ctx)
}
