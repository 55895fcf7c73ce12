package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"sotto/transparency"
)

// statusOf is the one table from AddCheckpoint's errors to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrBadSignature):
		return http.StatusForbidden
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrInconsistent):
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

const sizeContentType = "text/x.tlog.size"

// Handler serves the witness's HTTP API (see the package doc).
func (w *Witness) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAdd)
	mux.HandleFunc("GET /checkpoint", w.serveLatest)
	return mux
}

func (w *Witness) serveAdd(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxRequestSize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(rw, "witness: request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(rw, "witness: reading the request failed", http.StatusBadRequest)
		return
	}
	req, err := ParseRequest(body)
	var cosig []byte
	if err == nil {
		cosig, err = w.AddCheckpoint(req)
	}
	if err != nil {
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			rw.Header().Set("Content-Type", sizeContentType)
			rw.WriteHeader(http.StatusConflict)
			fmt.Fprintf(rw, "%d\n", conflict.Size)
			return
		}
		code := statusOf(err)
		if code == http.StatusInternalServerError {
			w.cfg.Logger.Error("witness: add-checkpoint", "err", err)
			http.Error(rw, "witness: internal error", code)
			return
		}
		w.cfg.Logger.Warn("witness: refused a checkpoint", "err", err)
		http.Error(rw, err.Error(), code)
		return
	}
	rw.Header().Set("Content-Type", "application/octet-stream")
	rw.Write(cosig)
}

func (w *Witness) serveLatest(rw http.ResponseWriter, _ *http.Request) {
	head, cosig := w.Latest()
	if head == nil {
		http.Error(rw, "witness: nothing co-signed yet", http.StatusNotFound)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Write(encodeCheckpoint(head, cosig))
}

// Client talks to a witness over HTTP.
type Client struct {
	URL  string       // the witness's base URL, e.g. http://witness.example:7070
	HTTP *http.Client // default http.DefaultClient
}

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// StatusError is a refusal by the witness other than a conflict.
type StatusError struct {
	Code int
	Text string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("witness: HTTP %d: %s", e.Code, e.Text)
}

// AddCheckpoint asks the witness to co-sign head (an encoded
// transparency.SignedHead), given the consistency proof from oldSize. It
// returns the encoded cosignature, a *ConflictError (the witness's size),
// or a *StatusError.
func (c *Client) AddCheckpoint(ctx context.Context, oldSize uint64, proof []transparency.Hash, head []byte) ([]byte, error) {
	req := Request{OldSize: oldSize, Proof: proof, Head: head}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(c.URL, "/")+"/add-checkpoint", bytes.NewReader(req.Encode()))
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	resp, err := c.client().Do(hr)
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if _, err := transparency.DecodeCosignature(body); err != nil {
			return nil, fmt.Errorf("witness: answer: %w", err)
		}
		return body, nil
	case http.StatusConflict:
		n, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64)
		if err != nil {
			return nil, &StatusError{Code: resp.StatusCode, Text: "conflict without a size"}
		}
		return nil, &ConflictError{Size: n}
	default:
		return nil, &StatusError{Code: resp.StatusCode, Text: strings.TrimSpace(string(body))}
	}
}

// Checkpoint fetches the witness's newest co-signed head and cosignature
// (both nil: none yet). The caller verifies them.
func (c *Client) Checkpoint(ctx context.Context) (head, cosig []byte, err error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+"/checkpoint", nil)
	if err != nil {
		return nil, nil, fmt.Errorf("witness: %w", err)
	}
	resp, err := c.client().Do(hr)
	if err != nil {
		return nil, nil, fmt.Errorf("witness: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return nil, nil, fmt.Errorf("witness: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil, nil
	default:
		return nil, nil, &StatusError{Code: resp.StatusCode, Text: strings.TrimSpace(string(body))}
	}
	return ParseCheckpoint(body)
}

// ParseCheckpoint parses a GET /checkpoint answer: an encoded signed head
// and an encoded cosignature, each base64 on its own line. It checks their
// form, not their signatures.
func ParseCheckpoint(body []byte) (head, cosig []byte, err error) {
	s, ok := strings.CutSuffix(string(body), "\n")
	lines := strings.Split(s, "\n")
	if !ok || len(lines) != 2 {
		return nil, nil, fmt.Errorf("%w: checkpoint answer is not two lines", ErrMalformed)
	}
	if head, err = b64.Strict().DecodeString(lines[0]); err != nil || len(head) != transparency.SignedHeadSize {
		return nil, nil, fmt.Errorf("%w: checkpoint head", ErrMalformed)
	}
	if cosig, err = b64.Strict().DecodeString(lines[1]); err != nil || len(cosig) != transparency.CosignatureSize {
		return nil, nil, fmt.Errorf("%w: checkpoint cosignature", ErrMalformed)
	}
	return head, cosig, nil
}

func encodeCheckpoint(head, cosig []byte) []byte {
	return fmt.Appendf(nil, "%s\n%s\n", b64.EncodeToString(head), b64.EncodeToString(cosig))
}
