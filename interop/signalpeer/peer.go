package signalpeer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"time"
)

// closeTimeout bounds how long Close waits for the peer to exit at end of input.
const closeTimeout = 10 * time.Second

// maxLine bounds one reply line; a PreKeySignalMessage with a Kyber ciphertext is a few
// kilobytes, a bundle about three.
const maxLine = 16 << 20

// Peer is a running peer process. Its methods are safe for concurrent use; requests are
// sent one at a time, in order.
type Peer struct {
	label string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex // serializes requests
	nextID  int64
	broken  error // set once the line protocol is out of step
	closed  bool
	waitErr error

	replies    chan replyLine
	readerDone chan struct{}
	stderr     *tailBuffer
}

type replyLine struct {
	line []byte
	err  error
}

// Start runs argv as a peer process. label names the peer in errors (e.g. "node",
// "go"). The process ends when Close is called or ctx is cancelled.
func Start(ctx context.Context, label string, argv ...string) (*Peer, error) {
	if len(argv) == 0 {
		return nil, errors.New("signalpeer: empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("signalpeer: %s: %w", label, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("signalpeer: %s: %w", label, err)
	}
	p := &Peer{
		label:      label,
		cmd:        cmd,
		stdin:      stdin,
		replies:    make(chan replyLine, 1),
		readerDone: make(chan struct{}),
		stderr:     &tailBuffer{max: 64 << 10},
	}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("signalpeer: %s: start %s: %w", label, argv[0], err)
	}
	go p.read(stdout)
	return p, nil
}

// read owns stdout: it delivers each reply line and ends at end of file.
func (p *Peer) read(stdout io.Reader) {
	defer close(p.readerDone)
	defer close(p.replies)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		line := bytes.Clone(sc.Bytes())
		p.replies <- replyLine{line: line}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	p.replies <- replyLine{err: err}
}

// Label returns the peer's label.
func (p *Peer) Label() string { return p.label }

// Stderr returns the last bytes the process wrote to its standard error.
func (p *Peer) Stderr() string { return p.stderr.String() }

// Call sends one request and decodes the reply's results into out (which may be nil).
// A failure reply is returned as *Error.
func (p *Peer) Call(ctx context.Context, op string, args map[string]any, out any) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return p.broken
	}
	p.nextID++
	id := p.nextID
	req := make(map[string]any, len(args)+2)
	for k, v := range args {
		req[k] = v
	}
	req["id"] = id
	req["op"] = op
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("signalpeer: %s: %s: encode request: %w", p.label, op, err)
	}
	b = append(b, '\n')
	if _, err := p.stdin.Write(b); err != nil {
		p.broken = fmt.Errorf("%w: %s: write: %v (stderr: %s)", ErrProtocol, p.label, err, p.stderr)
		return p.broken
	}
	var r replyLine
	select {
	case <-ctx.Done():
		p.broken = fmt.Errorf("%w: %s: %s: no reply: %v", ErrProtocol, p.label, op, ctx.Err())
		return p.broken
	case r = <-p.replies:
	}
	if r.err != nil || r.line == nil {
		p.broken = fmt.Errorf("%w: %s: %s: read reply: %v (stderr: %s)", ErrProtocol, p.label, op, r.err, p.stderr)
		return p.broken
	}
	var head struct {
		ID    *int64 `json:"id"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.line, &head); err != nil {
		p.broken = fmt.Errorf("%w: %s: %s: reply is not JSON: %v", ErrProtocol, p.label, op, err)
		return p.broken
	}
	if head.ID == nil || *head.ID != id {
		p.broken = fmt.Errorf("%w: %s: %s: reply id mismatch (want %d): %.200s", ErrProtocol, p.label, op, id, r.line)
		return p.broken
	}
	if !head.OK {
		return parseError(p.label, op, head.Error)
	}
	if out != nil {
		if err := json.Unmarshal(r.line, out); err != nil {
			return fmt.Errorf("%w: %s: %s: decode results: %v", ErrProtocol, p.label, op, err)
		}
	}
	return nil
}

// Close ends the peer's input and waits for it to exit; a clean exit is status 0.
// It is safe to call more than once.
func (p *Peer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return p.waitErr
	}
	p.closed = true
	cerr := p.stdin.Close()
	// Drain what is left so the reader can finish; a peer that does not exit at end
	// of input is killed after closeTimeout.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for range p.replies {
		}
	}()
	select {
	case <-drained:
	case <-time.After(closeTimeout):
		_ = p.cmd.Process.Kill()
		<-drained
	}
	<-p.readerDone
	werr := p.cmd.Wait()
	if p.broken == nil {
		p.broken = errors.New("signalpeer: peer closed")
	}
	switch {
	case werr != nil:
		p.waitErr = fmt.Errorf("signalpeer: %s: exit: %w (stderr: %s)", p.label, werr, p.stderr)
	case cerr != nil && !errors.Is(cerr, io.ErrClosedPipe):
		p.waitErr = fmt.Errorf("signalpeer: %s: close: %w", p.label, cerr)
	}
	return p.waitErr
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
