package agent

import (
	"context"
	"net"
	"net/http"
	"sync"

	"sotto/agent/api"
)

// PipeListener is an in-memory listener: Dial hands it one end of a
// net.Pipe. A front end that hosts the agent for itself only (a one-shot
// command when no agent runs) talks to it through one, over the same API
// as through the socket.
type PipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewPipeListener returns an open PipeListener.
func NewPipeListener() *PipeListener {
	return &PipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for a Dial.
func (l *PipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Dial connects to the listener.
func (l *PipeListener) Dial(ctx context.Context) (net.Conn, error) {
	a, b := net.Pipe()
	select {
	case l.conns <- b:
		return a, nil
	case <-l.done:
		a.Close()
		b.Close()
		return nil, net.ErrClosed
	case <-ctx.Done():
		a.Close()
		b.Close()
		return nil, ctx.Err()
	}
}

// Close stops Accept and Dial.
func (l *PipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the listener's (nominal) address.
func (l *PipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "agent" }

// Local serves a's API in this process, for the caller only, and returns
// a client of it; stop ends the server and waits for it.
func Local(a *Agent) (cl *api.Client, stop func()) {
	ln := NewPipeListener()
	srv := &http.Server{Handler: NewHandler(a)}
	done := make(chan struct{})
	go func() {
		// Owned by stop, which waits for it.
		defer close(done)
		_ = srv.Serve(ln)
	}()
	cl = api.NewClient(ln.Dial)
	return cl, func() {
		cl.CloseIdle()
		_ = srv.Close()
		<-done
	}
}
