package hostileproxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// Direction says which way a frame travels.
type Direction int

// Directions.
const (
	ToRelay  Direction = iota + 1 // from the client to the relay
	ToClient                      // from the relay to the client
)

func (d Direction) String() string {
	if d == ToRelay {
		return "to-relay"
	}
	return "to-client"
}

// Rule decides what becomes of one frame on connection conn (numbered
// from 1 in accept order): it returns the frames to forward in its place —
// none to drop it, the frame itself to pass it, several to inject or
// replay. The frame is the proxy's own copy; a rule may modify it. Rules
// run on the connection's pump goroutines and must be safe for
// concurrent use.
type Rule func(conn int, dir Direction, f *wire.Frame) []*wire.Frame

// Pass forwards every frame unchanged.
func Pass(_ int, _ Direction, f *wire.Frame) []*wire.Frame { return []*wire.Frame{f} }

// Record is one frame the proxy saw, before its rule ran.
type Record struct {
	Conn  int
	Dir   Direction
	Frame *wire.Frame
}

// Proxy is an http.Handler that proxies WebSocket connections to a relay.
type Proxy struct {
	target string // ws:// URL of the relay's WebSocket endpoint

	mu     sync.Mutex
	rule   Rule
	seen   []Record
	nconns int
	wg     sync.WaitGroup
	closed bool
	cancel []context.CancelFunc
	live   map[int]*link
}

// link is one proxied connection.
type link struct {
	user   string // the username it enrolled or authenticated as
	client *websocket.Conn
	relay  *websocket.Conn
	wmu    sync.Mutex // serializes injected writes with the pumps'
}

// New returns a proxy to the relay at relayURL (http:// or ws://, path
// /v1/ws added when it has none), applying rule (nil: Pass).
func New(relayURL string, rule Rule) *Proxy {
	u := strings.Replace(strings.Replace(relayURL, "https://", "wss://", 1), "http://", "ws://", 1)
	if rest, ok := strings.CutPrefix(u, "ws://"); ok && !strings.Contains(rest, "/") {
		u += "/v1/ws"
	} else if rest, ok := strings.CutPrefix(u, "wss://"); ok && !strings.Contains(rest, "/") {
		u += "/v1/ws"
	}
	if rule == nil {
		rule = Pass
	}
	return &Proxy{target: u, rule: rule}
}

// SetRule replaces the rule for the frames that follow.
func (p *Proxy) SetRule(r Rule) {
	if r == nil {
		r = Pass
	}
	p.mu.Lock()
	p.rule = r
	p.mu.Unlock()
}

// Seen returns every frame seen so far, in order per direction, before
// rules applied: the material for replays.
func (p *Proxy) Seen() []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Record, len(p.seen))
	for i, r := range p.seen {
		out[i] = Record{Conn: r.Conn, Dir: r.Dir, Frame: proto.Clone(r.Frame).(*wire.Frame)}
	}
	return out
}

// Close ends every proxied connection and waits for them.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	cancels := p.cancel
	p.cancel = nil
	p.mu.Unlock()
	for _, c := range cancels {
		c()
	}
	p.wg.Wait()
}

// ServeHTTP accepts a client's WebSocket and proxies it to the relay.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		cancel()
		http.Error(w, "closed", http.StatusServiceUnavailable)
		return
	}
	p.nconns++
	id := p.nconns
	p.cancel = append(p.cancel, cancel)
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()
	defer cancel()
	defer func() {
		p.mu.Lock()
		delete(p.live, id)
		p.mu.Unlock()
	}()

	client, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer client.CloseNow()
	client.SetReadLimit(wire.MaxFrameSize * 2)
	relay, _, err := websocket.Dial(ctx, p.target, nil)
	if err != nil {
		client.Close(websocket.StatusInternalError, "relay unreachable")
		return
	}
	defer relay.CloseNow()
	relay.SetReadLimit(wire.MaxFrameSize * 2)
	l := &link{client: client, relay: relay}
	p.mu.Lock()
	if p.live == nil {
		p.live = make(map[int]*link)
	}
	p.live[id] = l
	p.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); defer cancel(); p.pump(ctx, id, l, ToRelay, client, relay) }()
	go func() { defer pumps.Done(); defer cancel(); p.pump(ctx, id, l, ToClient, relay, client) }()
	pumps.Wait()
}

// pump copies frames from src to dst through the rule until either side
// ends; a close from src is passed on to dst.
func (p *Proxy) pump(ctx context.Context, id int, l *link, dir Direction, src, dst *websocket.Conn) {
	for {
		typ, b, err := src.Read(ctx)
		if err != nil {
			status := websocket.CloseStatus(err)
			if status != -1 {
				var ce websocket.CloseError
				reason := ""
				if errors.As(err, &ce) {
					reason = ce.Reason
				}
				dst.Close(status, reason)
			}
			return
		}
		f, err := wire.DecodeFrame(b)
		if err != nil || typ != websocket.MessageBinary {
			// Not a frame: pass it as is (the far side judges it).
			if l.write(ctx, dst, typ, b) != nil {
				return
			}
			continue
		}
		p.mu.Lock()
		if dir == ToRelay {
			switch b := f.GetRequest().GetBody().(type) {
			case *wire.Request_Enroll:
				l.user = b.Enroll.GetUsername()
			case *wire.Request_Authenticate:
				l.user = b.Authenticate.GetUsername()
			}
		}
		p.seen = append(p.seen, Record{Conn: id, Dir: dir, Frame: proto.Clone(f).(*wire.Frame)})
		rule := p.rule
		p.mu.Unlock()
		for _, out := range rule(id, dir, f) {
			ob, err := wire.EncodeFrame(out)
			if err != nil {
				ob, err = proto.Marshal(out) // let a rule send what EncodeFrame refuses
				if err != nil {
					continue
				}
			}
			if l.write(ctx, dst, websocket.MessageBinary, ob) != nil {
				return
			}
		}
	}
}

func (l *link) write(ctx context.Context, dst *websocket.Conn, typ websocket.MessageType, b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return dst.Write(ctx, typ, b)
}

// ErrNoConnection reports that no live connection matches.
var ErrNoConnection = errors.New("hostileproxy: no live connection for that user")

// Inject sends f, unprompted, on every live connection of user in
// direction dir (ToClient: as if the relay sent it). It returns how many
// connections it was written to.
func (p *Proxy) Inject(ctx context.Context, user string, dir Direction, f *wire.Frame) (int, error) {
	b, err := wire.EncodeFrame(f)
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	var links []*link
	for _, l := range p.live {
		if l.user == user {
			links = append(links, l)
		}
	}
	p.mu.Unlock()
	n := 0
	for _, l := range links {
		dst := l.client
		if dir == ToRelay {
			dst = l.relay
		}
		if err := l.write(ctx, dst, websocket.MessageBinary, b); err == nil {
			n++
		}
	}
	if n == 0 {
		return 0, ErrNoConnection
	}
	return n, nil
}

// PushEnvelope is a frame that pushes env to a client, as the relay does.
func PushEnvelope(env *wire.Envelope) *wire.Frame {
	return &wire.Frame{Version: wire.Version, Kind: &wire.Frame_Push{Push: &wire.Push{Body: &wire.Push_Envelope{Envelope: env}}}}
}
