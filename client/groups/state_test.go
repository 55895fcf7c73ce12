package groups

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"sotto/wire"
)

func TestStateDelta(t *testing.T) {
	base := bytes.Repeat([]byte("0123456789"), 100)
	for _, b := range [][]byte{
		base,
		nil,
		[]byte("x"),
		append(slices.Clone(base[:500]), base[510:]...),                        // shorter
		append(append(slices.Clone(base[:500]), "inserted"...), base[500:]...), // longer
		append(slices.Clone(base), "tail"...),                                  // appended
		append([]byte("head"), base...),                                        // prepended
		append(slices.Clone(base[:1]), bytes.Repeat([]byte{7}, 3000)...),       // rewritten
	} {
		d := makeDelta(base, b)
		got, err := applyDelta(base, d)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("delta of %d bytes: %v, got %d bytes", len(b), err, len(got))
		}
	}
	if d := makeDelta(base, append(slices.Clone(base[:300]), append([]byte("AB"), base[302:]...)...)); len(d) != 8+2 {
		t.Fatalf("a two-byte change makes a delta of %d bytes", len(d))
	}
	for _, bad := range [][]byte{nil, {0, 0, 0, 1}, {0, 0, 3, 0xe9, 0, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if _, err := applyDelta(base, bad); err == nil {
			t.Fatalf("applyDelta(%x) took it", bad)
		}
	}
}

// FuzzApplyDelta: a stored delta (the store is encrypted and
// authenticated, but a damaged one must fail cleanly).
func FuzzApplyDelta(f *testing.F) {
	base := bytes.Repeat([]byte("abc"), 50)
	f.Add(makeDelta(base, []byte("abcXbc")))
	f.Add(makeDelta(base, base))
	f.Add([]byte{0, 0, 0, 200, 0, 0, 0, 200})
	f.Fuzz(func(t *testing.T, d []byte) {
		out, err := applyDelta(base, d)
		if err != nil {
			return
		}
		if again, err := applyDelta(base, makeDelta(base, out)); err != nil || !bytes.Equal(again, out) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// lostAnswer is a relay connection whose GroupSend reaches the relay but
// whose answer is lost the first time (the device then crashes).
type lostAnswer struct {
	Relay
	lost bool
}

var errLostAnswer = errors.New("the connection ended before the answer")

func (l *lostAnswer) GroupSend(ctx context.Context, req *wire.GroupSendRequest) (*wire.GroupSendResponse, error) {
	resp, err := l.Relay.GroupSend(ctx, req)
	if err == nil && !l.lost {
		l.lost = true
		return nil, errLostAnswer
	}
	return resp, err
}

// A sending key is used once: the advanced ratchet is in the store
// before the ciphertext leaves, so a device that crashes after sending
// (its answer lost) and starts again from its store sends the next
// message with the next key, which the members read (a reused key would
// be refused by them, and would repeat a nonce).
func TestSendKeyNotReusedAfterCrash(t *testing.T) {
	ctx := context.Background()
	r := startScaleRelay(t)
	devs := r.enroll(t, []string{"creator", "reader"})
	creator, reader := r.manager(t, devs[0]), r.manager(t, devs[1])
	id, err := creator.Create(ctx, "g", "reader")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	real, err := creator.relay()
	if err != nil {
		t.Fatal(err)
	}
	lossy := &lostAnswer{Relay: real}
	crashing := New(func() (Relay, error) { return lossy, nil }, creator.kv, creator.self, Options{})
	if _, err := crashing.Send(ctx, id, "before the crash"); !errors.Is(err, errLostAnswer) {
		t.Fatalf("the first send: %v", err)
	}
	// The device starts again: a new Manager on the same store.
	restarted := New(creator.relay, creator.kv, creator.self, Options{})
	if _, err := restarted.Send(ctx, id, "after the crash"); err != nil {
		t.Fatal(err)
	}
	got, err := reader.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, m := range got {
		texts = append(texts, m.Text)
	}
	if !slices.Equal(texts, []string{"before the crash", "after the crash"}) {
		t.Fatalf("the reader read %q", texts)
	}
}

// A message changes only the delta; a commit writes a new base and
// drops the delta; a record of the older layout (the whole state in the
// record) is read and moved to the base at its next save.
func TestStateLayout(t *testing.T) {
	ctx := context.Background()
	r := startScaleRelay(t)
	devs := r.enroll(t, []string{"creator", "reader"})
	creator, reader := r.manager(t, devs[0]), r.manager(t, devs[1])
	id, err := creator.Create(ctx, "g", "reader")
	if err != nil {
		t.Fatal(err)
	}
	base, err := creator.kv.Get(ctx, tblGroupBase, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two", "three"} {
		if _, err := creator.Send(ctx, id, text); err != nil {
			t.Fatal(err)
		}
	}
	after, err := creator.kv.Get(ctx, tblGroupBase, id)
	if err != nil || !bytes.Equal(after, base) {
		t.Fatalf("sending rewrote the base (%v)", err)
	}
	d, err := creator.kv.Get(ctx, tblGroupDelta, id)
	t.Logf("base %d bytes, delta %d", len(base), len(d))
	if err != nil || len(d) > 1024 {
		t.Fatalf("the delta after three messages: %d bytes, %v", len(d), err)
	}
	if err := creator.Update(ctx, id); err != nil {
		t.Fatal(err)
	}
	if after, err = creator.kv.Get(ctx, tblGroupBase, id); err != nil || bytes.Equal(after, base) {
		t.Fatalf("a commit kept the base (%v)", err)
	}
	if _, err := creator.kv.Get(ctx, tblGroupDelta, id); err == nil {
		t.Fatal("a commit kept the delta of the old base")
	}

	// The older layout.
	rec, g, err := creator.load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := json.Marshal(map[string]any{"name": rec.Name, "state": rec.state})
	if err != nil {
		t.Fatal(err)
	}
	if err := creator.kv.Put(ctx, tblGroups, id, legacy); err != nil {
		t.Fatal(err)
	}
	if _, err := creator.Send(ctx, id, "four"); err != nil {
		t.Fatal(err)
	}
	rec2, g2, err := creator.load(ctx, id)
	if err != nil || rec2.State != nil || rec2.Base == nil || g2.Epoch() != g.Epoch() {
		t.Fatalf("after the older layout's next save: %v %+v", err, rec2)
	}
	got, err := reader.Sync(ctx)
	if err != nil || len(got) != 4 || got[3].Text != "four" {
		t.Fatalf("the reader: %v %d messages", err, len(got))
	}
}

// Info reads a group without the state lock while messages and commits
// are saved: it never meets a base and a delta that do not belong
// together.
func TestStateReadDuringSaves(t *testing.T) {
	ctx := context.Background()
	r := startScaleRelay(t)
	devs := r.enroll(t, []string{"creator", "reader"})
	creator := r.manager(t, devs[0])
	r.manager(t, devs[1])
	id, err := creator.Create(ctx, "g", "reader")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := creator.Info(ctx, id); err != nil {
				errs <- err
				return
			}
		}
	}()
	for i := range 20 {
		if _, err := creator.Send(ctx, id, "m"); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			if err := creator.Update(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Fatalf("Info during saves: %v", err)
	}
}
