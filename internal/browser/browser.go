package browser

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// ErrNotFound is returned by Find when no Chromium is installed.
var ErrNotFound = errors.New("browser: no chromium found (apt-get install chromium, or set SOTTO_CHROMIUM)")

// Find returns the path of the Chromium to drive: $SOTTO_CHROMIUM, or
// chromium, chromium-browser or google-chrome on $PATH.
func Find() (string, error) {
	if p := os.Getenv("SOTTO_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNotFound
}

// Flags are the switches every launch gets: headless, no sandbox (tests
// run as root), and nothing that reaches out to the network on its own.
var Flags = []string{
	"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--disable-default-apps", "--disable-extensions", "--mute-audio",
	"--remote-debugging-port=0",
}

// Browser is one running Chromium and its DevTools connection.
type Browser struct {
	cmd    *exec.Cmd
	conn   *websocket.Conn
	cancel context.CancelFunc
	done   chan struct{} // the reader has stopped
	stderr *tail

	nextID  atomic.Int64
	mu      sync.Mutex
	waiting map[int64]chan reply
	pages   map[string]*Page // by session id
	readErr error
}

type reply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type command struct {
	ID        int64           `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
}

type message struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	reply
}

// Launch starts Chromium at path with a fresh profile in dataDir and the
// extra flags, and connects to it. Close stops it.
func Launch(ctx context.Context, path, dataDir string, extra ...string) (*Browser, error) {
	args := append(append([]string{}, Flags...), "--user-data-dir="+dataDir)
	args = append(append(args, extra...), "about:blank")
	cmd := exec.Command(path, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("browser: %w", err)
	}
	b := &Browser{cmd: cmd, done: make(chan struct{}), stderr: &tail{}, waiting: map[int64]chan reply{}, pages: map[string]*Page{}}
	wsURL := make(chan string, 1)
	go func() {
		// Chromium prints where DevTools listens, then goes on logging;
		// the rest is kept for error messages.
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if u, ok := strings.CutPrefix(line, "DevTools listening on "); ok {
				select {
				case wsURL <- u:
				default:
				}
			}
			b.stderr.add(line)
		}
	}()
	var u string
	start := time.NewTimer(60 * time.Second)
	defer start.Stop()
	select {
	case u = <-wsURL:
	case <-start.C:
		b.kill()
		return nil, fmt.Errorf("browser: chromium did not start: %s", b.stderr)
	case <-ctx.Done():
		b.kill()
		return nil, ctx.Err()
	}
	// The connection lives until Close, not until ctx ends: the HTTP
	// client ties an upgraded connection to the dial's context.
	rctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel) // but ctx may abandon the dial
	conn, _, err := websocket.Dial(rctx, u, nil)
	if !stop() || err != nil {
		cancel()
		b.kill()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("browser: %w", err)
	}
	conn.SetReadLimit(256 << 20) // screenshots
	b.conn = conn
	b.cancel = cancel
	go b.read(rctx)
	return b, nil
}

// Close asks Chromium to quit, waits for it (so that its profile folder
// can be removed), and kills it if it does not.
func (b *Browser) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.call(ctx, "", "Browser.close", nil, nil)
	exited := make(chan struct{})
	go func() { b.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-ctx.Done():
		b.cmd.Process.Kill()
		<-exited
	}
	b.cancel()
	b.conn.Close(websocket.StatusNormalClosure, "")
	<-b.done
	return nil
}

// kill stops a Chromium that never connected.
func (b *Browser) kill() {
	b.cmd.Process.Kill()
	b.cmd.Wait()
}

// Log is the tail of what Chromium wrote to stderr.
func (b *Browser) Log() string { return b.stderr.String() }

func (b *Browser) read(ctx context.Context) {
	defer close(b.done)
	for {
		_, data, err := b.conn.Read(ctx)
		if err != nil {
			b.mu.Lock()
			b.readErr = err
			for id, ch := range b.waiting {
				close(ch)
				delete(b.waiting, id)
			}
			b.mu.Unlock()
			return
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			continue
		}
		b.mu.Lock()
		if m.ID != 0 {
			if ch, ok := b.waiting[m.ID]; ok {
				ch <- m.reply
				delete(b.waiting, m.ID)
			}
		} else if p := b.pages[m.SessionID]; p != nil {
			p.event(m.Method, m.Params)
		}
		b.mu.Unlock()
	}
}

// call sends one command (to a page's session, or to the browser when
// session is "") and decodes its result into out.
func (b *Browser) call(ctx context.Context, session, method string, params, out any) error {
	id := b.nextID.Add(1)
	ch := make(chan reply, 1)
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return fmt.Errorf("browser: %s: %w", method, b.readErr)
	}
	b.waiting[id] = ch
	b.mu.Unlock()
	p, err := json.Marshal(params)
	if err != nil {
		return err
	}
	msg, _ := json.Marshal(command{ID: id, Method: method, Params: p, SessionID: session})
	if err := b.conn.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("browser: %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return fmt.Errorf("browser: %s: connection closed", method)
		}
		if r.Error != nil {
			return fmt.Errorf("browser: %s: %s", method, r.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		delete(b.waiting, id)
		b.mu.Unlock()
		return fmt.Errorf("browser: %s: %w", method, ctx.Err())
	}
}

// NewPage opens a tab in a new browser context: its own cookies and
// storage, as if a different browser profile.
func (b *Browser) NewPage(ctx context.Context) (*Page, error) {
	var bc struct {
		ID string `json:"browserContextId"`
	}
	if err := b.call(ctx, "", "Target.createBrowserContext", map[string]any{"disposeOnDetach": true}, &bc); err != nil {
		return nil, err
	}
	var tg struct {
		ID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank", "browserContextId": bc.ID}, &tg); err != nil {
		return nil, err
	}
	var at struct {
		ID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": tg.ID, "flatten": true}, &at); err != nil {
		return nil, err
	}
	p := &Page{b: b, session: at.ID, target: tg.ID, context: bc.ID, loads: make(chan struct{}, 16)}
	b.mu.Lock()
	b.pages[at.ID] = p
	b.mu.Unlock()
	for _, m := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		if err := p.call(ctx, m, nil, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// tail keeps the last lines written to it.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, line)
	if len(t.lines) > 50 {
		t.lines = t.lines[len(t.lines)-50:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

var _ io.Closer = (*Browser)(nil)
