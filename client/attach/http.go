package attach

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"sotto/client/content"
)

// Errors of the blob API callers branch on.
var (
	ErrTooLarge = errors.New("attach: file exceeds the relay's size limit")
	ErrQuota    = errors.New("attach: the relay's storage quota for this device is used up")
	ErrNotFound = errors.New("attach: attachment not found on the relay (expired or deleted)")
	ErrAuth     = errors.New("attach: the relay refused the blob token")
	ErrDenied   = errors.New("attach: the relay refused the upload (has the subscription expired?)")
	// ErrBadResponse reports an answer of the relay that does not parse.
	ErrBadResponse = errors.New("attach: malformed answer from the relay")
)

// Headers of the blob API (shared with the relay, which defines the same).
const (
	hdrLength   = "Blob-Length"    // POST: the blob's total size
	hdrOffset   = "Upload-Offset"  // PATCH: where the body goes; HEAD/PATCH answer: bytes committed
	hdrWriteKey = "Blob-Write-Key" // PATCH, DELETE: the blob's write key (hex)
)

// WriteKeySize is the size of a blob's write key: the capability, given
// only to the uploader, to upload the blob's bytes and to delete it.
const WriteKeySize = 32

// Progress receives (bytes done, bytes total) as a transfer advances.
type Progress func(done, total int64)

// Client moves blobs to and from one relay.
type Client struct {
	// Base is the relay's HTTP base URL (ws:// and wss:// are mapped to
	// http:// and https://).
	Base string
	// HTTP is the client to use; nil: a default with no overall timeout.
	HTTP *http.Client
	// CheckURL, when set, vets every URL before a request (the client's
	// TLS and plaintext rules, transport.Options.CheckURL).
	CheckURL func(rawURL string) error
	// Token returns a valid bearer token for the blob API (called again
	// when the relay refuses one). Only creating a blob needs one (the
	// relay charges the device's quota); uploading its bytes and deleting
	// it need its write key, downloading only its id, so that no token
	// ties a download or a delete to a device.
	Token func(ctx context.Context) (string, error)
	// SegmentSize is the blob bytes sent per PATCH (8 MiB).
	SegmentSize int64
	// Retries bounds consecutive failed attempts without progress (8).
	Retries int
	// RetryDelay is the first pause between attempts, doubling (100 ms).
	RetryDelay time.Duration

	mu    sync.Mutex
	token string
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

func (c *Client) url(id []byte) (string, error) {
	u, err := url.Parse(c.Base)
	if err != nil {
		return "", fmt.Errorf("attach: relay url: %w", err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	case "http", "https":
	default:
		return "", fmt.Errorf("attach: relay url: unsupported scheme %q", u.Scheme)
	}
	u.Path = "/v1/blobs"
	if id != nil {
		u.Path += "/" + hex.EncodeToString(id)
	}
	u.RawQuery = ""
	if c.CheckURL != nil {
		if err := c.CheckURL(u.String()); err != nil {
			return "", err
		}
	}
	return u.String(), nil
}

func (c *Client) bearer(ctx context.Context, fresh bool) (string, error) {
	c.mu.Lock()
	t := c.token
	c.mu.Unlock()
	if t != "" && !fresh {
		return t, nil
	}
	t, err := c.Token(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.token = t
	c.mu.Unlock()
	return t, nil
}

// do sends a request built by mk, retrying once with a fresh token on 401.
func (c *Client) do(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := mk()
		if err != nil {
			return nil, err
		}
		tok, err := c.bearer(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := c.httpClient().Do(req.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			drain(resp)
			continue
		}
		return resp, nil
	}
}

// plain sends a request built by mk with no token.
func (c *Client) plain(ctx context.Context, mk func() (*http.Request, error)) (*http.Response, error) {
	req, err := mk()
	if err != nil {
		return nil, err
	}
	return c.httpClient().Do(req.WithContext(ctx))
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// statusError maps an unexpected response to a typed error.
func statusError(resp *http.Response) error {
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusInsufficientStorage:
		return ErrQuota
	case http.StatusNotFound, http.StatusGone:
		return ErrNotFound
	case http.StatusUnauthorized:
		return ErrAuth
	case http.StatusForbidden:
		return ErrDenied
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return fmt.Errorf("attach: relay answered %s: %q", resp.Status, msg)
}

// permanent reports errors that retrying cannot fix.
func permanent(err error) bool {
	return errors.Is(err, ErrTooLarge) || errors.Is(err, ErrQuota) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, ErrAuth) || errors.Is(err, ErrDenied) || errors.Is(err, ErrTampered) || errors.Is(err, ErrTruncated) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// retry runs step until it reports done, allowing c.Retries consecutive
// failures without progress (step reports progress).
func (c *Client) retry(ctx context.Context, step func() (done, progressed bool, err error)) error {
	retries, delay := c.Retries, c.RetryDelay
	if retries <= 0 {
		retries = 8
	}
	if delay <= 0 {
		delay = 100 * time.Millisecond
	}
	fails, d := 0, delay
	for {
		done, progressed, err := step()
		if err == nil && done {
			return nil
		}
		if err != nil {
			if permanent(err) || ctx.Err() != nil {
				return err
			}
			if progressed {
				fails, d = 0, delay
			}
			fails++
			if fails > retries {
				return fmt.Errorf("attach: giving up after %d attempts: %w", fails, err)
			}
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return ctx.Err()
			}
			d = min(2*d, 5*time.Second)
		}
	}
}

// Upload encrypts size bytes of src under a fresh key and stores the blob
// on the relay, resuming after dropped connections. The returned pointer
// has the blob id, key, digest, size and chunk size set; the write key,
// which Delete needs, is for the uploader to keep (in its encrypted
// store), never to send with the pointer.
func (c *Client) Upload(ctx context.Context, src io.ReaderAt, size int64, progress Progress) (ptr *content.AttachmentPointer, writeKey []byte, err error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, fmt.Errorf("attach: key: %w", err)
	}
	s, err := NewSealer(key, src, size, DefaultChunkSize)
	if err != nil {
		return nil, nil, err
	}
	total := s.Size()
	id, wk, err := c.create(ctx, total)
	if err != nil {
		return nil, nil, err
	}
	seg := c.SegmentSize
	if seg <= 0 {
		seg = 8 << 20
	}
	h := sha256.New()
	var off int64
	snap, err := h.(encoding.BinaryMarshaler).MarshalBinary() // the hash state at off
	if err != nil {
		return nil, nil, fmt.Errorf("attach: %w", err)
	}
	restore := func() error {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(snap); err != nil {
			return fmt.Errorf("attach: %w", err)
		}
		return nil
	}
	advance := func(to int64) {
		off = to
		snap, _ = h.(encoding.BinaryMarshaler).MarshalBinary()
		if progress != nil {
			progress(off, total)
		}
	}
	err = c.retry(ctx, func() (bool, bool, error) {
		if err := restore(); err != nil {
			return false, false, err
		}
		end := min(off+seg, total)
		body := &hashingReader{r: io.NewSectionReader(s, off, end-off), h: h}
		if progress != nil {
			from := off
			body.progress = func(n int64) { progress(from+n, total) }
		}
		committed, perr := c.patch(ctx, id, wk, off, end-off, body)
		body.stop()
		if perr == nil && committed == end && body.n == end-off {
			advance(end)
			return off == total, true, nil
		}
		if perr != nil && permanent(perr) {
			return false, false, perr
		}
		// Ask where the relay stands and re-hash up to there from the
		// state at the start of this segment.
		committed, herr := c.committed(ctx, id)
		if herr != nil {
			if perr == nil {
				perr = herr
			}
			return false, false, perr
		}
		if committed < off || committed > end {
			return false, false, fmt.Errorf("attach: relay reports offset %d outside [%d, %d]", committed, off, end)
		}
		if err := restore(); err != nil {
			return false, false, err
		}
		if _, err := io.Copy(h, io.NewSectionReader(s, off, committed-off)); err != nil {
			return false, false, err
		}
		progressed := committed > off
		advance(committed)
		if off == total {
			return true, true, nil
		}
		if perr == nil {
			perr = errors.New("attach: upload interrupted")
		}
		return false, progressed, perr
	})
	if err != nil {
		clear(key)
		c.abandon(ctx, id, wk)
		return nil, nil, err
	}
	return &content.AttachmentPointer{BlobId: id, Key: key, Digest: h.Sum(nil), Size: uint64(size),
		ChunkSize: uint32(DefaultChunkSize)}, wk, nil
}

// hashingReader hashes what the HTTP transport reads, until stopped (the
// transport may still read after Do returns).
type hashingReader struct {
	mu   sync.Mutex
	r    io.Reader
	h    hash.Hash
	n    int64
	dead bool
	// progress, when set, gets the bytes read so far.
	progress func(n int64)
}

func (b *hashingReader) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead {
		return 0, errors.New("attach: request over")
	}
	n, err := b.r.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	if b.progress != nil && n > 0 {
		b.progress(b.n)
	}
	return n, err
}

func (b *hashingReader) stop() {
	b.mu.Lock()
	b.dead = true
	b.mu.Unlock()
}

func (c *Client) create(ctx context.Context, total int64) (id, writeKey []byte, err error) {
	u, err := c.url(nil)
	if err != nil {
		return nil, nil, err
	}
	err = c.retry(ctx, func() (bool, bool, error) {
		resp, err := c.do(ctx, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPost, u, nil)
			if err == nil {
				req.Header.Set(hdrLength, strconv.FormatInt(total, 10))
			}
			return req, err
		})
		if err != nil {
			return false, false, err
		}
		if resp.StatusCode != http.StatusCreated {
			return false, false, statusError(resp)
		}
		defer drain(resp)
		if id, writeKey, err = parseCreated(resp.Body); err != nil {
			return false, false, err
		}
		return true, true, nil
	})
	return id, writeKey, err
}

// maxCreated bounds the relay's answer to a create.
const maxCreated = 4096

// parseCreated reads the relay's answer to a create: a JSON object whose
// "id" is the new blob's id and "write_key" its write key, in hex.
func parseCreated(body io.Reader) (id, writeKey []byte, err error) {
	var r struct {
		ID       string `json:"id"`
		WriteKey string `json:"write_key"`
	}
	if err := json.NewDecoder(io.LimitReader(body, maxCreated)).Decode(&r); err != nil {
		return nil, nil, fmt.Errorf("%w: create: %v", ErrBadResponse, err)
	}
	id, err = hex.DecodeString(r.ID)
	if err != nil || len(id) != IDSize {
		return nil, nil, fmt.Errorf("%w: create: bad blob id", ErrBadResponse)
	}
	writeKey, err = hex.DecodeString(r.WriteKey)
	if err != nil || len(writeKey) != WriteKeySize {
		return nil, nil, fmt.Errorf("%w: create: bad write key", ErrBadResponse)
	}
	return id, writeKey, nil
}

func (c *Client) patch(ctx context.Context, id, writeKey []byte, off, n int64, body io.Reader) (int64, error) {
	u, err := c.url(id)
	if err != nil {
		return 0, err
	}
	resp, err := c.plain(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPatch, u, io.NopCloser(body))
		if err == nil {
			req.ContentLength = n
			req.Header.Set(hdrOffset, strconv.FormatInt(off, 10))
			req.Header.Set(hdrWriteKey, hex.EncodeToString(writeKey))
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		return req, err
	})
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusConflict {
		return 0, statusError(resp)
	}
	defer drain(resp)
	got, err := strconv.ParseInt(resp.Header.Get(hdrOffset), 10, 64)
	if err != nil {
		return 0, errors.New("attach: relay sent no upload offset")
	}
	if resp.StatusCode == http.StatusConflict {
		return got, errors.New("attach: upload offset conflict")
	}
	return got, nil
}

// Delete asks the relay to delete blob id before its TTL with the write
// key Upload returned (ErrDenied for a wrong one); ErrNotFound means it is
// already gone. Recipients who downloaded it keep their copies.
func (c *Client) Delete(ctx context.Context, id, writeKey []byte) error {
	if len(id) != IDSize {
		return fmt.Errorf("%w: bad blob id", ErrNotFound)
	}
	u, err := c.url(id)
	if err != nil {
		return err
	}
	resp, err := c.plain(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodDelete, u, nil)
		if err == nil {
			req.Header.Set(hdrWriteKey, hex.EncodeToString(writeKey))
		}
		return req, err
	})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusNoContent {
		return statusError(resp)
	}
	drain(resp)
	return nil
}

// abandon deletes an upload that will not be finished, so that it stops
// counting against the quota now rather than after the relay's upload TTL.
// Best effort: what fails here expires anyway.
func (c *Client) abandon(ctx context.Context, id, writeKey []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = c.Delete(ctx, id, writeKey)
}

// committed asks how many bytes of blob id the relay holds.
func (c *Client) committed(ctx context.Context, id []byte) (int64, error) {
	u, err := c.url(id)
	if err != nil {
		return 0, err
	}
	resp, err := c.plain(ctx, func() (*http.Request, error) { return http.NewRequest(http.MethodHead, u, nil) })
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, statusError(resp)
	}
	drain(resp)
	return strconv.ParseInt(resp.Header.Get(hdrOffset), 10, 64)
}

// Download fetches the blob ptr names, checks and decrypts it into dst,
// resuming with Range requests after dropped connections. An error wrapping
// ErrTampered or ErrTruncated means the relay's copy is bad; what was
// written to dst must then be discarded.
func (c *Client) Download(ctx context.Context, ptr *content.AttachmentPointer, dst io.Writer, progress Progress) error {
	if err := CheckPointer(ptr); err != nil {
		return err
	}
	o, err := NewOpener(dst, ptr.Key, ptr.Digest, int64(ptr.Size), int(ptr.ChunkSize))
	if err != nil {
		return err
	}
	u, err := c.url(ptr.BlobId)
	if err != nil {
		return err
	}
	total := o.Size()
	return c.retry(ctx, func() (bool, bool, error) {
		start := o.Offset()
		resp, err := c.plain(ctx, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodGet, u, nil)
			if err == nil && start > 0 {
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-", start))
			}
			return req, err
		})
		if err != nil {
			return false, false, err
		}
		switch {
		case resp.StatusCode == http.StatusOK && start == 0:
		case resp.StatusCode == http.StatusPartialContent && start > 0:
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			drain(resp)
			return false, false, ErrTruncated // the blob is shorter than announced
		default:
			return false, false, statusError(resp)
		}
		defer resp.Body.Close()
		var w io.Writer = o
		if progress != nil {
			w = &progressWriter{w: o, o: o, total: total, fn: progress}
		}
		_, err = io.Copy(w, resp.Body)
		progressed := o.Offset() > start
		if err != nil {
			return false, progressed, err
		}
		if o.Offset() < total && !progressed {
			return false, false, ErrTruncated
		}
		if o.Offset() < total {
			return false, true, errors.New("attach: download interrupted")
		}
		return true, true, o.Close()
	})
}

type progressWriter struct {
	w     io.Writer
	o     *Opener
	total int64
	fn    Progress
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.fn(p.o.Offset(), p.total)
	return n, err
}
