package spqr

import (
	"encoding/binary"
	"fmt"
)

// The key chain turns epoch secrets into message keys: per epoch, one
// symmetric chain per direction. Keys skipped on a receiving chain are kept
// (at most maxOOO back, as libsignal) so late messages still decrypt.

const (
	defaultMaxJump = 25000
	defaultMaxOOO  = 2000
	skippedEntry   = 4 + 32 // counter (big-endian) ‖ key
	// keepBeforeSend is how many epochs before the sending epoch keep
	// their receiving chains.
	keepBeforeSend = 1
)

// Direction says which side of the session this is: A (the initiator) or
// B. The two sides' chains mirror each other.
type Direction int

// Directions, as libsignal numbers them.
const (
	AToB Direction = 0
	BToA Direction = 1
)

func (d Direction) other() Direction { return 1 - d }

type limits struct {
	maxJump, maxOOO uint32 // zero means the default
}

func (l limits) jump() uint64 {
	if l.maxJump == 0 {
		return defaultMaxJump
	}
	return uint64(l.maxJump)
}

func (l limits) ooo() uint64 {
	if l.maxOOO == 0 {
		return defaultMaxOOO
	}
	return uint64(l.maxOOO)
}

func (l limits) trimSize() int { return int(l.ooo()*11/10 + 1) }

// half is one direction of one epoch's chain.
type half struct {
	ctr     uint32
	next    []byte // 32 bytes; empty once the chain can no longer send
	skipped []byte // entries of skippedEntry bytes
}

func (h *half) step() (uint32, []byte) {
	h.ctr++
	info := string(binary.BigEndian.AppendUint32(nil, h.ctr)) + labelChainNext
	out := kdf(zeroSalt, h.next, info, 64)
	h.next = out[:32:32]
	return h.ctr, out[32:]
}

func (h *half) removeSkipped(i int) {
	last := len(h.skipped) - skippedEntry
	if i < last {
		copy(h.skipped[i:i+skippedEntry], h.skipped[last:])
	}
	h.skipped = h.skipped[:last]
}

func (h *half) takeSkipped(at uint32, l limits) ([]byte, error) {
	if uint64(at)+l.ooo() < uint64(h.ctr) {
		return nil, fmt.Errorf("%w: index %d", ErrKeyTrimmed, at)
	}
	for i := 0; i+skippedEntry <= len(h.skipped); i += skippedEntry {
		if binary.BigEndian.Uint32(h.skipped[i:]) == at {
			k := append([]byte(nil), h.skipped[i+4:i+skippedEntry]...)
			h.removeSkipped(i)
			return k, nil
		}
	}
	return nil, fmt.Errorf("%w: index %d", ErrKeyUsed, at)
}

func (h *half) trim(l limits) {
	if len(h.skipped) < l.trimSize()*skippedEntry {
		return
	}
	horizon := uint64(h.ctr) - min(uint64(h.ctr), l.ooo())
	for i := 0; i+skippedEntry <= len(h.skipped); {
		if uint64(binary.BigEndian.Uint32(h.skipped[i:])) < horizon {
			h.removeSkipped(i)
		} else {
			i += skippedEntry
		}
	}
}

// key returns the receiving key of index at.
func (h *half) key(at uint32, l limits) ([]byte, error) {
	switch {
	case at == h.ctr:
		return nil, fmt.Errorf("%w: index %d", ErrKeyUsed, at)
	case at < h.ctr:
		return h.takeSkipped(at, l)
	case uint64(at-h.ctr) > l.jump():
		return nil, fmt.Errorf("%w: %d after %d", ErrKeyJump, at, h.ctr)
	}
	if len(h.next) != 32 {
		return nil, fmt.Errorf("%w: chain closed", ErrState)
	}
	if uint64(at) > uint64(h.ctr)+l.ooo() {
		h.skipped = nil
	}
	for at > h.ctr+1 {
		ctr, k := h.step()
		if uint64(ctr)+l.ooo() >= uint64(at) {
			h.skipped = binary.BigEndian.AppendUint32(h.skipped, ctr)
			h.skipped = append(h.skipped, k...)
		}
	}
	h.trim(l)
	_, k := h.step()
	return k, nil
}

type link struct{ send, recv half }

// keyChain is the state of the message-key chains of every epoch held.
type keyChain struct {
	dir       Direction
	epoch     uint64 // newest epoch
	sendEpoch uint64
	links     []link // links[len-1] is epoch `epoch`
	nextRoot  []byte
	limits    limits
}

func newLink(gen []byte, dir Direction) link {
	part := func(d Direction) half {
		off := 32 + 32*int(d)
		return half{next: append([]byte(nil), gen[off:off+32]...)}
	}
	return link{send: part(dir), recv: part(dir.other())}
}

func newKeyChain(initial []byte, dir Direction, l limits) *keyChain {
	gen := kdf(zeroSalt, initial, labelChainStart, 96)
	return &keyChain{dir: dir, links: []link{newLink(gen, dir)}, nextRoot: gen[:32:32], limits: l}
}

func (c *keyChain) addEpoch(ep uint64, secret []byte) error {
	if ep != c.epoch+1 {
		return fmt.Errorf("%w: epoch %d after %d", ErrState, ep, c.epoch)
	}
	gen := kdf(c.nextRoot, secret, labelChainEpoch, 96)
	c.epoch = ep
	c.nextRoot = gen[:32:32]
	c.links = append(c.links, newLink(gen, c.dir))
	return nil
}

func (c *keyChain) index(ep uint64) (int, error) {
	if ep > c.epoch || c.epoch-ep >= uint64(len(c.links)) {
		return 0, fmt.Errorf("%w: %d", ErrEpoch, ep)
	}
	return len(c.links) - 1 - int(c.epoch-ep), nil
}

func (c *keyChain) sendKey(ep uint64) (uint32, []byte, error) {
	if ep < c.sendEpoch {
		return 0, nil, fmt.Errorf("%w: send epoch %d after %d", ErrState, ep, c.sendEpoch)
	}
	i, err := c.index(ep)
	if err != nil {
		return 0, nil, err
	}
	if c.sendEpoch != ep {
		c.sendEpoch = ep
		if i > keepBeforeSend {
			c.links = c.links[i-keepBeforeSend:]
			i = keepBeforeSend
		}
		for j := range i {
			c.links[j].send.next = nil
		}
	}
	h := &c.links[i].send
	if len(h.next) != 32 || h.ctr == ^uint32(0) {
		return 0, nil, fmt.Errorf("%w: sending chain closed", ErrState)
	}
	ctr, k := h.step()
	return ctr, k, nil
}

func (c *keyChain) recvKey(ep uint64, at uint32) ([]byte, error) {
	i, err := c.index(ep)
	if err != nil {
		return nil, err
	}
	return c.links[i].recv.key(at, c.limits)
}
