package relay

import (
	"context"
	"errors"
	"time"

	"sotto/transparency"
)

// Witness co-signs the key log's heads: the org's witness (package
// witness's Client), run away from the relay (DESIGN §7). AddCheckpoint
// sends the encoded signed head with the consistency proof from oldSize,
// the size the witness last co-signed, and returns the encoded
// transparency.Cosignature. A witness at another size answers with an
// error that has a WitnessSize() uint64 method.
type Witness interface {
	AddCheckpoint(ctx context.Context, oldSize uint64, proof []transparency.Hash, head []byte) ([]byte, error)
}

const (
	// witnessDebounce gathers the appends of a burst into one submission.
	witnessDebounce = 50 * time.Millisecond
	// witnessTimeout bounds one request to the witness.
	witnessTimeout = 10 * time.Second
)

// witnessed is the newest head the witness co-signed, with its
// cosignatures.
type witnessed struct {
	head   transparency.SignedHead
	enc    []byte
	cosigs [][]byte
}

// cosigsFor returns the cosignatures held for head's tree (nil: none).
func (k *keyLog) cosigsFor(head transparency.SignedHead) [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.wit.enc == nil || k.wit.head.Size != head.Size || k.wit.head.Root != head.Root {
		return nil
	}
	return k.wit.cosigs
}

// witnessedHead returns the newest co-signed head and its cosignatures
// (nil: none yet).
func (k *keyLog) witnessedHead() ([]byte, [][]byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.wit.enc, k.wit.cosigs
}

func (k *keyLog) setWitnessed(head transparency.SignedHead, enc, cosig []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.wit.enc == nil || head.Size >= k.wit.head.Size {
		k.wit = witnessed{head: head, enc: enc, cosigs: [][]byte{cosig}}
	}
}

// runWitness submits the newest head to the witness soon after the log
// grows and every WitnessEvery, until ctx ends. The witness's size is
// learnt from its first answer (a conflict), so a restarted relay gets its
// cosignature back by submitting again.
func (s *Server) runWitness(ctx context.Context) {
	k := s.klog
	t := time.NewTicker(s.cfg.WitnessEvery)
	defer t.Stop()
	known := uint64(0) // the witness's size, as far as this relay knows
	for {
		known = k.submit(ctx, s.cfg.Witness, known, s)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-k.grew:
			select {
			case <-ctx.Done():
				return
			case <-time.After(witnessDebounce):
			}
			select { // appends during the debounce are in this submission
			case <-k.grew:
			default:
			}
		}
	}
}

// submit sends the newest head to w unless it is co-signed already and
// returns the witness's size. No lock is held while it waits for w.
func (k *keyLog) submit(ctx context.Context, w Witness, known uint64, s *Server) uint64 {
	for range 3 {
		head, enc, err := k.signedHead(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("key log witness: no head to submit", "err", err)
			}
			return known
		}
		if head.Size == 0 || k.cosigsFor(head) != nil {
			return max(known, head.Size) // an empty log has nothing to witness
		}
		if known > head.Size {
			s.log.Error("key log witness: the witness co-signed a larger tree than this relay's log", "witness", known, "log", head.Size)
			return known
		}
		proof, err := transparency.ConsistencyProof(k.reader(ctx), known, head.Size)
		if err != nil {
			s.log.Warn("key log witness: consistency proof", "err", err)
			return known
		}
		wctx, cancel := context.WithTimeout(ctx, witnessTimeout)
		cosig, err := w.AddCheckpoint(wctx, known, proof, enc)
		cancel()
		var conflict interface{ WitnessSize() uint64 }
		switch {
		case errors.As(err, &conflict):
			known = conflict.WitnessSize()
			continue
		case err != nil:
			if ctx.Err() == nil {
				s.metrics.witnessFailures.Add(1)
				s.log.Warn("key log witness refused or failed", "size", head.Size, "from", known, "err", err)
			}
			return known
		}
		s.metrics.witnessCosigned.Add(1)
		k.setWitnessed(head, enc, cosig)
		return head.Size
	}
	return known
}
