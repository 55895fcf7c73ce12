package relay

import (
	"context"
	"errors"
	"testing"
)

type ctxKey struct{}

func TestConnCtxCancel(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")
	x := &connCtx{parent: parent}
	if x.Err() != nil {
		t.Fatalf("Err before cancel: %v", x.Err())
	}
	if x.Value(ctxKey{}) != "v" {
		t.Fatal("the parent's value is lost")
	}
	done := x.Done()
	ran := make(chan struct{})
	x.AfterFunc(func() { close(ran) })
	stopped := x.AfterFunc(func() { t.Error("a stopped AfterFunc ran") })
	if !stopped() || stopped() {
		t.Fatal("stop did not report stopping exactly once")
	}
	child, cancelChild := context.WithCancel(x)
	defer cancelChild()
	x.cancel()
	x.cancel() // twice: nothing more
	<-done
	<-ran
	<-child.Done() // propagated through AfterFunc
	if !errors.Is(x.Err(), context.Canceled) || !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("Err after cancel: %v, child %v", x.Err(), child.Err())
	}
	late := make(chan struct{})
	if x.AfterFunc(func() { close(late) })() {
		t.Fatal("stop reported stopping a function registered after cancel")
	}
	<-late
}

func TestConnCtxCanceledBeforeDone(t *testing.T) {
	x := &connCtx{parent: context.Background()}
	x.cancel()
	<-x.Done()
	if x.after != nil {
		t.Fatal("the AfterFunc list outlives cancel")
	}
}

func TestConnCtxKeepsNoListWhenIdle(t *testing.T) {
	x := &connCtx{parent: context.Background()}
	for range 3 {
		ctx, cancel := context.WithCancel(x) // what storage calls do
		x.mu.Lock()
		n := len(x.after)
		x.mu.Unlock()
		if n != 1 {
			t.Fatalf("a derived context registered %d functions, not 1 (a goroutine per derived context instead?)", n)
		}
		cancel()
		<-ctx.Done()
	}
	if x.after != nil {
		t.Fatal("an idle connection keeps its AfterFunc list")
	}
}

// TestConnCtxServerError: between the server's cancel and the
// connection's close, Err reports the server's.
func TestConnCtxServerError(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	x := &connCtx{parent: parent}
	cancel()
	if !errors.Is(x.Err(), context.Canceled) {
		t.Fatalf("Err = %v", x.Err())
	}
}
