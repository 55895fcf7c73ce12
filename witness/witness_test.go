package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/transparency"
)

// testLog is a log with its key, signing heads over a MemoryTree.
type testLog struct {
	t    testing.TB
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
	tree *transparency.MemoryTree
}

func newLog(t testing.TB) *testLog {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{t: t, pub: pub, priv: priv, tree: &transparency.MemoryTree{}}
}

// fork returns a log with the same key whose leaves are l's, except leaf
// i, rewritten.
func (l *testLog) fork(i uint64) *testLog {
	f := &testLog{t: l.t, pub: l.pub, priv: l.priv, tree: &transparency.MemoryTree{}}
	for j := range l.tree.Size() {
		leaf := fmt.Appendf(nil, "leaf %d", j)
		if j == i {
			leaf = []byte("rewritten")
		}
		if err := f.tree.AppendLeaf(leaf); err != nil {
			l.t.Fatal(err)
		}
	}
	return f
}

func (l *testLog) grow(n int) {
	for range n {
		if err := l.tree.AppendLeaf(fmt.Appendf(nil, "leaf %d", l.tree.Size())); err != nil {
			l.t.Fatal(err)
		}
	}
}

func (l *testLog) head() transparency.SignedHead {
	root, err := l.tree.Root(l.tree.Size())
	if err != nil {
		l.t.Fatal(err)
	}
	return transparency.SignHead(l.priv, l.tree.Size(), root, time.Now().UnixMilli())
}

// request asks to go from size old to the newest head.
func (l *testLog) request(old uint64) Request {
	h := l.head()
	p, err := transparency.ConsistencyProof(l.tree, old, h.Size)
	if err != nil {
		l.t.Fatal(err)
	}
	return Request{OldSize: old, Proof: p, Head: h.Encode()}
}

func newWitness(t testing.TB, dir string, logKey ed25519.PublicKey, key ed25519.PrivateKey) *Witness {
	t.Helper()
	w, err := New(Config{Dir: dir, Key: key, LogKey: logKey, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func witnessKey(t testing.TB) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// serve runs w's handler on loopback and returns a Client for it.
func serve(t *testing.T, w *Witness) *Client {
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return &Client{URL: srv.URL, HTTP: srv.Client()}
}

func submit(ctx context.Context, c *Client, r Request) ([]byte, error) {
	return c.AddCheckpoint(ctx, r.OldSize, r.Proof, r.Head)
}

func mustCosign(t *testing.T, c *Client, w *Witness, l *testLog, old uint64) {
	t.Helper()
	h := l.head()
	cosig, err := c.AddCheckpoint(t.Context(), old, l.request(old).Proof, h.Encode())
	if err != nil {
		t.Fatalf("cosign %d->%d: %v", old, h.Size, err)
	}
	if ok, _ := transparency.FindCosignature(w.PublicKey(), l.pub, h.Size, h.Root, [][]byte{cosig}); !ok {
		t.Fatal("the cosignature does not verify")
	}
}

func status(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	var ce *ConflictError
	if errors.As(err, &ce) {
		return http.StatusConflict
	}
	return 0
}

func TestWitnessHonestLog(t *testing.T) {
	l := newLog(t)
	w := newWitness(t, t.TempDir(), l.pub, witnessKey(t))
	c := serve(t, w)
	if h, cs, err := c.Checkpoint(t.Context()); err != nil || h != nil || cs != nil {
		t.Fatalf("fresh witness: %x %x %v", h, cs, err)
	}
	l.grow(3)
	mustCosign(t, c, w, l, 0)
	l.grow(4)
	mustCosign(t, c, w, l, 3)
	mustCosign(t, c, w, l, 7) // the same tree again, another head
	h, cs, err := c.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	head, err := transparency.VerifyHead(l.pub, h)
	if err != nil || head.Size != 7 {
		t.Fatalf("checkpoint: size %d, %v", head.Size, err)
	}
	if ok, _ := transparency.FindCosignature(w.PublicKey(), l.pub, head.Size, head.Root, [][]byte{cs}); !ok {
		t.Fatal("checkpoint cosignature does not verify")
	}
}

// TestWitnessRefuses is the witness's whole point: it co-signs nothing
// that is not an extension of the tree it last co-signed.
func TestWitnessRefuses(t *testing.T) {
	ctx := t.Context()
	l := newLog(t)
	l.grow(5)
	other := newLog(t)
	other.grow(9)
	cases := []struct {
		name string
		req  func() Request
		code int
	}{
		{"fork of the co-signed prefix", func() Request {
			f := l.fork(2)
			f.grow(4)
			return f.request(5) // a valid proof inside the fork
		}, http.StatusUnprocessableEntity},
		{"same size, other root", func() Request {
			return l.fork(4).request(5)
		}, http.StatusUnprocessableEntity},
		{"smaller size", func() Request {
			s := newLog(t)
			s.pub, s.priv = l.pub, l.priv
			s.grow(3)
			r := s.request(0)
			r.OldSize = 5
			return r
		}, http.StatusUnprocessableEntity},
		{"proof from the wrong old tree", func() Request {
			g := l.fork(99)
			g.grow(3)
			r := g.request(4)
			r.OldSize = 5
			return r
		}, http.StatusUnprocessableEntity},
		{"another log's key", func() Request { return other.request(0) }, http.StatusForbidden},
		{"stale old size", func() Request {
			g := l.fork(99)
			g.grow(2)
			return g.request(3)
		}, http.StatusConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWitness(t, t.TempDir(), l.pub, witnessKey(t))
			c := serve(t, w)
			mustCosign(t, c, w, l, 0)
			cosig, err := submit(ctx, c, tc.req())
			if cosig != nil || status(err) != tc.code {
				t.Fatalf("got %x, %v; want HTTP %d", cosig, err, tc.code)
			}
			var ce *ConflictError
			if errors.As(err, &ce) && ce.Size != 5 {
				t.Fatalf("conflict names size %d, want 5", ce.Size)
			}
			// The state did not move: the honest log goes on from 5.
			l2 := l.fork(99)
			l2.grow(2)
			mustCosign(t, c, w, l2, 5)
		})
	}
}

func TestWitnessRequestErrors(t *testing.T) {
	l := newLog(t)
	w := newWitness(t, t.TempDir(), l.pub, witnessKey(t))
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	post := func(body []byte) int {
		resp, err := srv.Client().Post(srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post([]byte("old 0\n\nnot base64\n")); code != http.StatusBadRequest {
		t.Fatalf("malformed: HTTP %d", code)
	}
	if code := post(bytes.Repeat([]byte("A"), MaxRequestSize+1)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("too large: HTTP %d", code)
	}
	l.grow(1)
	r := l.request(0)
	r.Head[len(r.Head)-1] ^= 1
	if code := post(r.Encode()); code != http.StatusForbidden {
		t.Fatalf("bad signature: HTTP %d", code)
	}
}

func TestWitnessStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t)
	key := witnessKey(t)
	w := newWitness(t, dir, l.pub, key)
	l.grow(6)
	c := serve(t, w)
	mustCosign(t, c, w, l, 0)
	head, cosig := w.Latest()

	w2 := newWitness(t, dir, l.pub, key)
	h2, c2 := w2.Latest()
	if !bytes.Equal(head, h2) || !bytes.Equal(cosig, c2) {
		t.Fatal("a restarted witness forgot its state")
	}
	c = serve(t, w2)
	f := l.fork(1)
	if _, err := submit(t.Context(), c, f.request(0)); status(err) != http.StatusConflict {
		t.Fatalf("a restarted witness accepted old size 0: %v", err)
	}
	if _, err := submit(t.Context(), c, f.request(6)); status(err) != http.StatusUnprocessableEntity {
		t.Fatalf("a restarted witness co-signed another root for its size: %v", err)
	}
	if _, err := New(Config{Dir: dir, Key: key, LogKey: newLog(t).pub, Logger: slog.New(slog.DiscardHandler)}); err == nil {
		t.Fatal("a state of another log was loaded")
	}
}

// TestWitnessSavesBeforeSigning: no cosignature leaves the witness unless
// its new state is on disk; a failed save leaves the state as it was.
func TestWitnessSavesBeforeSigning(t *testing.T) {
	dir := t.TempDir()
	l := newLog(t)
	key := witnessKey(t)
	w := newWitness(t, dir, l.pub, key)
	l.grow(2)
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		t.Fatal(err)
	}
	l.grow(2)
	saveErr := errors.New("disk full")
	var saved []byte
	w.save = func(b []byte) error { saved = b; return saveErr }
	if cosig, err := w.AddCheckpoint(l.request(2)); cosig != nil || !errors.Is(err, saveErr) {
		t.Fatalf("cosigned without saving: %x %v", cosig, err)
	}
	if saved == nil {
		t.Fatal("the state was not written before signing")
	}
	if h, _ := w.Latest(); h == nil || mustHead(t, l, h).Size != 2 {
		t.Fatal("a failed save moved the state")
	}
	// With the real save, what AddCheckpoint returned is on disk.
	w.save = func(b []byte) error { return writeFileDurably(filepath.Join(dir, StateFile), b) }
	cosig, err := w.AddCheckpoint(l.request(2))
	if err != nil {
		t.Fatal(err)
	}
	disk, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil || !bytes.HasSuffix(disk, cosig) {
		t.Fatalf("the state on disk is not the one co-signed: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

func mustHead(t *testing.T, l *testLog, b []byte) transparency.SignedHead {
	h, err := transparency.VerifyHead(l.pub, b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	pub, err := InitKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	k, err := LoadKey(dir)
	if err != nil || !k.Public().(ed25519.PublicKey).Equal(pub) {
		t.Fatalf("loaded another key: %v", err)
	}
	if _, err := InitKey(dir); err == nil {
		t.Fatal("an existing key was overwritten")
	}
}

func FuzzParseRequest(f *testing.F) {
	l := newLog(f)
	l.grow(11)
	seeds := []Request{l.request(0), l.request(4), l.request(11)}
	for _, r := range seeds {
		got, err := ParseRequest(r.Encode())
		if err != nil || !bytes.Equal(got.Encode(), r.Encode()) {
			f.Fatalf("seed does not parse: %v", err)
		}
		f.Add(r.Encode())
	}
	f.Add([]byte("old 3\n\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if !bytes.Equal(r.Encode(), b) {
			t.Fatal("a parsed request does not re-encode to the same bytes")
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	l := newLog(f)
	l.grow(3)
	w := newWitness(f, f.TempDir(), l.pub, witnessKey(f))
	if _, err := w.AddCheckpoint(l.request(0)); err != nil {
		f.Fatal(err)
	}
	seed := encodeCheckpoint(w.Latest())
	if h, c, err := ParseCheckpoint(seed); err != nil || h == nil || c == nil {
		f.Fatalf("seed does not parse: %v", err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, c, err := ParseCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error of another kind: %v", err)
			}
			return
		}
		if !bytes.Equal(encodeCheckpoint(h, c), b) {
			t.Fatal("a parsed checkpoint does not re-encode to the same bytes")
		}
	})
}
