package mls

import (
	"bytes"
	"fmt"
)

// DefaultPastEpochs is how many epochs a member keeps receive keys for
// after leaving them, so application messages sent just before a commit
// still decrypt (RFC 9420 §15.4 leaves the window to the application).
const DefaultPastEpochs = 1

// maxPastEpochs caps SetPastEpochs.
const maxPastEpochs = 16

// pastEpoch is what is kept of a left epoch: enough to decrypt and
// authenticate its application messages, nothing to send.
type pastEpoch struct {
	ctx              groupContext
	tree             *ratchetTree
	keys             *secretTree
	senderDataSecret []byte
}

func (p *pastEpoch) wipe() {
	p.keys.wipe()
	clear(p.senderDataSecret)
}

func (g *groupState) pastLimit() int {
	switch {
	case g.keepPast < 0:
		return 0
	case g.keepPast == 0:
		return DefaultPastEpochs
	}
	return g.keepPast
}

// leaveEpoch wipes the secrets of old once next has replaced it, keeping
// old's receive keys among next's past epochs within the limit.
func leaveEpoch(old, next *groupState) {
	if old == nil || old == next || old.epoch == next.epoch {
		return
	}
	limit := next.pastLimit()
	past := append([]*pastEpoch(nil), old.past...)
	if limit > 0 && old.keys != next.keys {
		past = append(past, &pastEpoch{
			ctx:              old.ctx,
			tree:             old.tree,
			keys:             old.keys,
			senderDataSecret: append([]byte(nil), old.epoch.senderDataSecret...),
		})
	} else if old.keys != next.keys {
		old.keys.wipe()
	}
	for len(past) > limit {
		past[0].wipe()
		past = past[1:]
	}
	next.past = past
	// Resumption PSKs of epochs beyond next's window are wiped: old,
	// which shares them, is left for good.
	for _, psk := range next.pruneResumption() {
		clear(psk)
	}
	old.epoch.wipe()
}

// unprotectPast decrypts an application message of a kept past epoch.
func (g *groupState) unprotectPast(pm *privateMessage) (*authenticatedContent, error) {
	for _, p := range g.past {
		if p.ctx.epoch != pm.epoch || !bytes.Equal(p.ctx.groupID, pm.groupID) {
			continue
		}
		if pm.contentType != contentApplication {
			return nil, fmt.Errorf("%w: handshake message from a past epoch", ErrInvalidMessage)
		}
		ac, accept, err := g.s.openPrivate(p.keys, p.senderDataSecret, pm)
		if err != nil {
			return nil, err
		}
		l := p.tree.leaf(ac.content.sender.index)
		if l == nil {
			accept(false)
			return nil, fmt.Errorf("%w: sender leaf is blank", ErrInvalidMessage)
		}
		if err := ac.verify(g.s, l.signatureKey, &p.ctx); err != nil {
			accept(false)
			return nil, err
		}
		accept(true)
		return ac, nil
	}
	return nil, fmt.Errorf("%w: wrong group or epoch", ErrInvalidMessage)
}

// SetPastEpochs sets how many left epochs keep their receive keys
// (0 restores DefaultPastEpochs, a negative value keeps none). Fewer
// kept epochs mean stronger forward secrecy and more lost late messages.
func (g *Group) SetPastEpochs(n int) {
	if n > maxPastEpochs {
		n = maxPastEpochs
	}
	g.st.keepPast = n
	for limit := g.st.pastLimit(); len(g.st.past) > limit; {
		g.st.past[0].wipe()
		g.st.past = g.st.past[1:]
	}
}
