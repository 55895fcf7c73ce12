package redteam

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"sotto/relay"
	"sotto/transparency"
	"sotto/witness"
)

// A split view: the relay shows some users a key log in which it rewrote
// history (alice's binding swapped for a key of its own) and the others
// the honest one. Every head it shows must be co-signed by the org's
// witness, which co-signs only a head consistent with the last one it
// co-signed.

func runSplitView(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	dir, err := e.Dir()
	if err != nil {
		return Outcome{}, err
	}
	var w *witness.Witness
	var wc *witness.Client
	var werr error
	r, _, err := e.World(ctx, RelayOptions{Config: func(c *relay.Config) {
		_, wkey, _ := ed25519.GenerateKey(nil)
		w, werr = witness.New(witness.Config{Dir: dir, Key: wkey, LogKey: c.LogKey.Public().(ed25519.PublicKey), Logger: slog.New(slog.DiscardHandler)})
		if werr != nil {
			return
		}
		ws := httptest.NewServer(w.Handler())
		e.OnClose(ws.Close)
		wc = &witness.Client{URL: ws.URL, HTTP: ws.Client()}
		c.Witness = wc
	}}, nil, "alice", "bob")
	if err = errors.Join(werr, err); err != nil {
		return Outcome{}, err
	}
	// The relay submits its head soon after the log grows.
	leaves, err := r.Store.LogLeaves(ctx, 0, 100)
	if err != nil {
		return Outcome{}, err
	}
	n := uint64(len(leaves))
	honest, err := waitWitnessed(ctx, w, n)
	if err != nil {
		return Outcome{}, err
	}
	// The fork: alice's leaf replaced, the history rehashed, then one
	// leaf more, with a consistency proof from the forged tree.
	fake, err := fakeIdentity()
	if err != nil {
		return Outcome{}, err
	}
	forged, err := (&transparency.Binding{Kind: transparency.KindAdd, Username: "alice", IdentityKey: fake, TimestampMS: time.Now().UnixMilli()}).Encode()
	if err != nil {
		return Outcome{}, err
	}
	var tree transparency.MemoryTree
	for i, l := range append(leaves, forged) {
		if i == 0 {
			l = forged
		}
		if err := tree.AppendLeaf(l); err != nil {
			return Outcome{}, err
		}
	}
	var refusals []string
	for _, size := range []uint64{n, n + 1} {
		root, err := tree.Root(size)
		if err != nil {
			return Outcome{}, err
		}
		proof, err := transparency.ConsistencyProof(&tree, n, size)
		if err != nil {
			return Outcome{}, err
		}
		head := transparency.SignHead(r.LogKey, size, root, time.Now().UnixMilli())
		_, err = wc.AddCheckpoint(ctx, n, proof, head.Encode())
		if err == nil {
			return through("the witness co-signed a forked head of size %d", size), nil
		}
		var se *witness.StatusError
		if !errors.As(err, &se) || se.Code != http.StatusUnprocessableEntity {
			return Outcome{}, fmt.Errorf("forked head of size %d: %w", size, err)
		}
		refusals = append(refusals, fmt.Sprintf("size %d: %v", size, err))
	}
	if latest, _ := w.Latest(); string(latest) != string(honest) {
		return through("the witness's latest head changed"), nil
	}
	return stopped("a log with alice's binding rewritten, signed with the relay's log key: the witness refused it (%v)", refusals), nil
}

// waitWitnessed waits until the witness co-signed a head of size n and
// returns it.
func waitWitnessed(ctx context.Context, w *witness.Witness, n uint64) ([]byte, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if h, cosig := w.Latest(); cosig != nil {
			sh, err := transparency.DecodeHead(h)
			if err == nil && sh.Size >= n {
				return h, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("the witness never co-signed a head of size %d", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
