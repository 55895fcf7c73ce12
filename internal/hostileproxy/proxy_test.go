package hostileproxy

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"sotto/client/transport"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// startRelay runs a real relay and returns a proxy in front of it.
func startProxy(t *testing.T, rule Rule) (*Proxy, string) {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := relay.DefaultConfig()
	cfg.Directory, cfg.Mailbox = st, st
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rs := httptest.NewServer(srv.Handler())
	p := New(rs.URL, rule)
	ps := httptest.NewServer(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(ctx) }()
	t.Cleanup(func() {
		p.Close()
		ps.Close()
		cancel()
		<-done
		srv.Close()
		rs.Close()
		st.Close()
	})
	return p, ps.URL
}

func dial(t *testing.T, url string) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := transport.Dial(ctx, url, transport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestPassRewriteDropReplay(t *testing.T) {
	p, url := startProxy(t, nil)
	c := dial(t, url)
	ctx := context.Background()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("pass: %v", err)
	}

	p.SetRule(func(_ int, dir Direction, f *wire.Frame) []*wire.Frame {
		if r := f.GetResponse().GetPing(); r != nil {
			r.ServerTimeMs = 42
		}
		return []*wire.Frame{f}
	})
	if ms, err := c.Ping(ctx); err != nil || ms != 42 {
		t.Fatalf("rewrite: %d %v", ms, err)
	}

	p.SetRule(func(_ int, dir Direction, f *wire.Frame) []*wire.Frame {
		if f.GetRequest().GetPing() != nil {
			return nil
		}
		return []*wire.Frame{f}
	})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := c.Ping(short)
	cancel()
	if err == nil {
		t.Fatal("drop: the ping was answered")
	}

	// Replaying the relay's response: the client matches by id and
	// ignores the copy.
	p.SetRule(func(_ int, dir Direction, f *wire.Frame) []*wire.Frame {
		if dir == ToClient && f.GetResponse() != nil {
			return []*wire.Frame{f, f}
		}
		return []*wire.Frame{f}
	})
	for range 2 {
		if _, err := c.Ping(ctx); err != nil {
			t.Fatalf("replay: %v", err)
		}
	}
	var pings int
	for _, r := range p.Seen() {
		if r.Dir == ToRelay && r.Frame.GetRequest().GetPing() != nil {
			pings++
		}
	}
	if pings != 5 {
		t.Fatalf("recorded %d ping requests, want 5", pings)
	}
	if _, err := p.Inject(ctx, "nobody", ToClient, PushEnvelope(&wire.Envelope{})); err != ErrNoConnection {
		t.Fatalf("inject to an unknown user: %v", err)
	}
}
