package mls

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"slices"
)

// DefaultResumptionEpochs is how many epochs, the current one included,
// a member keeps the resumption_psk of (RFC 9420 §8.6), so PreSharedKey
// proposals may refer to recent past epochs of the group.
const DefaultResumptionEpochs = 8

// maxResumptionEpochs caps SetResumptionEpochs.
const maxResumptionEpochs = 1024

func (g *groupState) resumptionLimit() uint64 {
	switch {
	case g.keepResumption < 0:
		return 1
	case g.keepResumption == 0:
		return DefaultResumptionEpochs
	}
	return uint64(g.keepResumption)
}

// pruneResumption drops the resumption PSKs of epochs beyond the limit
// and returns them, for the caller to wipe once no other state shares
// them.
func (g *groupState) pruneResumption() [][]byte {
	limit := g.resumptionLimit()
	var dropped [][]byte
	for e, psk := range g.resumption {
		if e > g.ctx.epoch || g.ctx.epoch-e >= limit {
			dropped = append(dropped, psk)
			delete(g.resumption, e)
		}
	}
	return dropped
}

// SetResumptionEpochs sets how many epochs, the current one included,
// keep their resumption PSK for PreSharedKey proposals (0 restores
// DefaultResumptionEpochs; a negative value keeps only the current
// epoch's, which a ReInit or a branch needs).
func (g *Group) SetResumptionEpochs(n int) {
	g.st.keepResumption = min(n, maxResumptionEpochs)
	// The dropped PSKs are not zeroed here, since a pending commit's next
	// epoch may still share them; they are only unreferenced.
	g.st.pruneResumption()
}

// ResumptionEpochs lists the epochs whose resumption PSK the member
// still holds, oldest first.
func (g *Group) ResumptionEpochs() []uint64 {
	out := make([]uint64, 0, len(g.st.resumption))
	for e := range g.st.resumption {
		out = append(out, e)
	}
	slices.Sort(out)
	return out
}

// newNonce returns a fresh psk_nonce of KDF.Nh bytes (RFC 9420 §8.4).
func (s *suite) newNonce() ([]byte, error) {
	nonce := make([]byte, s.hashLen())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return nonce, nil
}

// resumptionPSKID names the resumption PSK of a kept epoch of this group
// with usage application, with a fresh nonce.
func (g *groupState) resumptionPSKID(epoch uint64) (preSharedKeyID, error) {
	if _, ok := g.resumption[epoch]; !ok {
		return preSharedKeyID{}, fmt.Errorf("%w: no resumption psk kept for epoch %d", ErrInvalidMessage, epoch)
	}
	nonce, err := g.s.newNonce()
	if err != nil {
		return preSharedKeyID{}, err
	}
	return preSharedKeyID{pskType: pskResumption, usage: resumptionApplication,
		pskGroupID: bytes.Clone(g.ctx.groupID), pskEpoch: epoch, pskNonce: nonce}, nil
}

// ProposeResumptionPSK proposes injecting the resumption PSK of a past
// (or the current) epoch of this group into the next epoch (RFC 9420
// §8.6, usage application). The epoch must still be kept
// (ResumptionEpochs); members that no longer hold it reject the commit.
func (g *Group) ProposeResumptionPSK(epoch uint64) ([]byte, error) {
	if err := g.st.usable(); err != nil {
		return nil, err
	}
	id, err := g.st.resumptionPSKID(epoch)
	if err != nil {
		return nil, err
	}
	return g.propose(proposal{typ: proposalPSK, psk: id})
}

// checkPSKProposal applies the checks of RFC 9420 §12.1.4 to a
// PreSharedKey proposal received in this epoch: a nonce of KDF.Nh bytes,
// a resumption PSK only of usage application, and a PSK this member can
// resolve.
func (g *groupState) checkPSKProposal(id *preSharedKeyID) error {
	if len(id.pskNonce) != g.s.hashLen() {
		return fmt.Errorf("%w: psk nonce length", ErrInvalidMessage)
	}
	if id.pskType == pskResumption && id.usage != resumptionApplication {
		return fmt.Errorf("%w: resumption psk usage %d in a proposal", ErrInvalidMessage, id.usage)
	}
	_, err := g.lookupPSK(id)
	return err
}

// resolveJoinPSK resolves a PSK a Welcome names: external PSKs from
// ExternalPSKs, the reinit PSK from ReInitFrom's last epoch, the branch
// PSK from a kept epoch of BranchFrom.
func (o *JoinOptions) resolveJoinPSK(id *preSharedKeyID) ([]byte, error) {
	switch id.pskType {
	case pskExternal:
		if psk, ok := o.ExternalPSKs[string(id.pskID)]; ok {
			return psk, nil
		}
	case pskResumption:
		switch old := o.ReInitFrom; {
		case id.usage == resumptionReInit && old != nil && old.st.reinit &&
			bytes.Equal(id.pskGroupID, old.st.ctx.groupID) && id.pskEpoch == old.st.ctx.epoch:
			if psk, ok := old.st.resumption[id.pskEpoch]; ok {
				return psk, nil
			}
		case id.usage == resumptionBranch && o.BranchFrom != nil &&
			bytes.Equal(id.pskGroupID, o.BranchFrom.st.ctx.groupID):
			if psk, ok := o.BranchFrom.st.resumption[id.pskEpoch]; ok {
				return psk, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: unknown pre-shared key", ErrInvalidMessage)
}

// checkResumptionWelcome applies the Welcome checks of RFC 9420
// §12.4.3.1, §11.2 and §11.3 for resumption PSKs: at most one PSK of
// usage reinit or branch; a reinit or branch Welcome only when the
// joiner asked for one (JoinOptions.ReInitFrom, BranchFrom), starting at
// epoch 1, and matching the old group (the ReInit proposal's parameters;
// for a branch the same version and suite and only leaves whose
// credential is in the old group).
func (o *JoinOptions) checkResumptionWelcome(psks []preSharedKeyID, gc *groupContext, tree *ratchetTree) error {
	var special *preSharedKeyID
	for i := range psks {
		id := &psks[i]
		if id.pskType != pskResumption || id.usage == resumptionApplication {
			continue
		}
		if id.usage != resumptionReInit && id.usage != resumptionBranch {
			return fmt.Errorf("%w: resumption psk usage %d", ErrInvalidMessage, id.usage)
		}
		if special != nil {
			return fmt.Errorf("%w: several reinit or branch psks in a welcome", ErrInvalidMessage)
		}
		special = id
	}
	if o.ReInitFrom != nil && o.BranchFrom != nil {
		return fmt.Errorf("%w: a welcome cannot be both a reinit and a branch", ErrInvalidMessage)
	}
	switch {
	case o.ReInitFrom != nil:
		if special == nil || special.usage != resumptionReInit {
			return fmt.Errorf("%w: welcome is not the reinit successor", ErrInvalidMessage)
		}
		if err := checkReInitWelcome(o.ReInitFrom.st, psks, gc); err != nil {
			return err
		}
	case o.BranchFrom != nil:
		if special == nil || special.usage != resumptionBranch {
			return fmt.Errorf("%w: welcome is not a branch of the group", ErrInvalidMessage)
		}
		if err := checkBranchWelcome(o.BranchFrom.st, gc, tree); err != nil {
			return err
		}
	case special != nil:
		return fmt.Errorf("%w: reinit or branch welcome without its old group", ErrInvalidMessage)
	}
	if special != nil && gc.epoch != 1 {
		return fmt.Errorf("%w: reinit or branch welcome for epoch %d, want 1", ErrInvalidMessage, gc.epoch)
	}
	return nil
}
