package witness

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"sotto/transparency"
)

// MaxRequestSize bounds an add-checkpoint request body: a proof of
// transparency.MaxProofLen hashes and a head, base64, with room to spare.
const MaxRequestSize = 8 << 10

// ErrMalformed is returned for a request that does not parse.
var ErrMalformed = errors.New("witness: malformed request")

// Request is an add-checkpoint request: the size the submitter believes
// the witness last co-signed, the consistency proof from that size to the
// head, and the log's encoded transparency.SignedHead.
type Request struct {
	OldSize uint64
	Proof   []transparency.Hash
	Head    []byte
}

var b64 = base64.StdEncoding

// Encode returns the request body.
func (r *Request) Encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "old %d\n", r.OldSize)
	for _, h := range r.Proof {
		b.WriteString(b64.EncodeToString(h[:]))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(b64.EncodeToString(r.Head))
	b.WriteByte('\n')
	return b.Bytes()
}

// ParseRequest parses a request body. It checks the form only: the head's
// signature and the proof are the witness's to check.
func ParseRequest(body []byte) (Request, error) {
	var r Request
	if len(body) > MaxRequestSize {
		return r, fmt.Errorf("%w: %d bytes", ErrMalformed, len(body))
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return r, fmt.Errorf("%w: not newline-terminated", ErrMalformed)
	}
	lines := bytes.Split(body[:len(body)-1], []byte("\n"))
	old, ok := bytes.CutPrefix(lines[0], []byte("old "))
	if !ok {
		return r, fmt.Errorf("%w: no old size line", ErrMalformed)
	}
	n, err := strconv.ParseUint(string(old), 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != string(old) {
		return r, fmt.Errorf("%w: old size %q", ErrMalformed, old)
	}
	r.OldSize = n
	i := 1
	for ; i < len(lines) && len(lines[i]) > 0; i++ {
		if len(r.Proof) == transparency.MaxProofLen {
			return r, fmt.Errorf("%w: proof longer than %d hashes", ErrMalformed, transparency.MaxProofLen)
		}
		var h transparency.Hash
		if d, err := b64.Strict().DecodeString(string(lines[i])); err != nil || len(d) != len(h) {
			return r, fmt.Errorf("%w: proof line %d", ErrMalformed, i)
		} else {
			copy(h[:], d)
		}
		r.Proof = append(r.Proof, h)
	}
	if i+2 != len(lines) {
		return r, fmt.Errorf("%w: want an empty line and one head line after the proof", ErrMalformed)
	}
	head, err := b64.Strict().DecodeString(string(lines[i+1]))
	if err != nil || len(head) != transparency.SignedHeadSize {
		return r, fmt.Errorf("%w: head line", ErrMalformed)
	}
	r.Head = head
	return r, nil
}
