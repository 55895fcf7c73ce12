package attach

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

const (
	// DefaultChunkSize is the plaintext bytes per sealed chunk.
	DefaultChunkSize = 64 << 10
	// MaxChunkSize bounds the chunk size a pointer may name (memory).
	MaxChunkSize = 1 << 20
	// MinChunkSize bounds it from below (overhead).
	MinChunkSize = 1 << 10
	// KeySize is the size of a file key.
	KeySize = 32
	// IDSize is the size of a blob id.
	IDSize = 16
	// HeaderSize is the size of the blob header.
	HeaderSize = 12
	// Overhead is the AEAD tag added to every chunk.
	Overhead = 16
	// MaxFileSize is the largest file this package encrypts (2 GiB).
	MaxFileSize = 2 << 30
)

var magic = [8]byte{'S', 'O', 'T', 'T', 'O', 'A', '1', '\n'}

// Errors callers branch on.
var (
	// ErrTampered: a chunk failed authentication or the digest differs.
	ErrTampered = errors.New("attach: attachment is corrupt or was tampered with")
	// ErrTruncated: the blob ended before its final chunk.
	ErrTruncated = errors.New("attach: attachment is truncated")
	// ErrInvalidPointer: the pointer is malformed.
	ErrInvalidPointer = errors.New("attach: invalid attachment pointer")
)

// header returns the blob header for chunkSize.
func header(chunkSize int) []byte {
	h := make([]byte, HeaderSize)
	copy(h, magic[:])
	binary.BigEndian.PutUint32(h[8:], uint32(chunkSize))
	return h
}

// parseHeader checks a blob header and returns its chunk size.
func parseHeader(h []byte) (int, error) {
	if len(h) != HeaderSize || subtle.ConstantTimeCompare(h[:8], magic[:]) != 1 {
		return 0, fmt.Errorf("%w: bad header", ErrTampered)
	}
	cs := int(binary.BigEndian.Uint32(h[8:]))
	if cs < MinChunkSize || cs > MaxChunkSize {
		return 0, fmt.Errorf("%w: bad chunk size", ErrTampered)
	}
	return cs, nil
}

// numChunks is how many chunks a plaintext of size bytes takes.
func numChunks(size int64, chunkSize int) int64 {
	if size == 0 {
		return 1
	}
	return (size + int64(chunkSize) - 1) / int64(chunkSize)
}

// CiphertextSize is the blob size for a plaintext of size bytes.
func CiphertextSize(size int64, chunkSize int) int64 {
	return HeaderSize + size + Overhead*numChunks(size, chunkSize)
}

func nonce(dst []byte, i int64, last bool) []byte {
	clear(dst)
	binary.BigEndian.PutUint32(dst[7:11], uint32(i))
	if last {
		dst[11] = 1
	}
	return dst
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: key size", ErrInvalidPointer)
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	return g, nil
}

// Sealer presents the encryption of a plaintext as a random-access blob: any
// range can be (re)produced, which is what resuming an upload needs. It
// caches one sealed chunk, so sequential reads seal each chunk once.
type Sealer struct {
	aead      cipher.AEAD
	src       io.ReaderAt
	size      int64
	chunkSize int
	hdr       []byte
	nonce     [12]byte

	pt     []byte
	cached int64 // index of the chunk in sealed, -1: none
	sealed []byte
}

// NewSealer encrypts the size bytes of src under key.
func NewSealer(key []byte, src io.ReaderAt, size int64, chunkSize int) (*Sealer, error) {
	if size < 0 || size > MaxFileSize {
		return nil, fmt.Errorf("attach: file size %d out of range (max %d)", size, int64(MaxFileSize))
	}
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return nil, fmt.Errorf("attach: chunk size %d out of range", chunkSize)
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: a, src: src, size: size, chunkSize: chunkSize, hdr: header(chunkSize),
		pt: make([]byte, chunkSize), cached: -1, sealed: make([]byte, 0, chunkSize+Overhead)}, nil
}

// Size is the blob size.
func (s *Sealer) Size() int64 { return CiphertextSize(s.size, s.chunkSize) }

// chunk seals chunk i (cached).
func (s *Sealer) chunk(i int64) ([]byte, error) {
	if s.cached == i {
		return s.sealed, nil
	}
	n := numChunks(s.size, s.chunkSize)
	start := i * int64(s.chunkSize)
	l := min(int64(s.chunkSize), s.size-start)
	if l > 0 {
		if _, err := s.src.ReadAt(s.pt[:l], start); err != nil && !(errors.Is(err, io.EOF)) {
			return nil, fmt.Errorf("attach: reading the file: %w", err)
		}
	} else {
		l = 0
	}
	s.sealed = s.aead.Seal(s.sealed[:0], nonce(s.nonce[:], i, i == n-1), s.pt[:l], s.hdr)
	s.cached = i
	return s.sealed, nil
}

// ReadAt reads the blob at off.
func (s *Sealer) ReadAt(p []byte, off int64) (int, error) {
	total := s.Size()
	n := 0
	for len(p) > 0 && off < total {
		var src []byte
		if off < HeaderSize {
			src = s.hdr[off:]
		} else {
			sc := int64(s.chunkSize + Overhead)
			i := (off - HeaderSize) / sc
			c, err := s.chunk(i)
			if err != nil {
				return n, err
			}
			src = c[(off-HeaderSize)-i*sc:]
		}
		k := copy(p, src)
		p, off, n = p[k:], off+int64(k), n+k
	}
	if len(p) > 0 {
		return n, io.EOF
	}
	return n, nil
}

// Opener decrypts a blob written to it in order and writes the plaintext to
// dst. Close reports whether the blob was complete and its digest right;
// until then, what reached dst is authenticated chunk by chunk but may be
// cut short.
type Opener struct {
	aead      cipher.AEAD
	dst       io.Writer
	digest    []byte
	h         hash.Hash
	chunkSize int
	total     int64 // expected blob size
	chunks    int64
	seen      int64 // blob bytes consumed
	next      int64 // next chunk index
	hdr       [HeaderSize]byte
	buf       []byte
	nonce     [12]byte
	out       []byte
	err       error
}

// NewOpener checks and decrypts a blob holding size plaintext bytes sealed
// under key in chunks of chunkSize, whose SHA-256 is digest.
func NewOpener(dst io.Writer, key, digest []byte, size int64, chunkSize int) (*Opener, error) {
	if size < 0 || size > MaxFileSize || chunkSize < MinChunkSize || chunkSize > MaxChunkSize || len(digest) != sha256.Size {
		return nil, ErrInvalidPointer
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Opener{aead: a, dst: dst, digest: digest, h: sha256.New(), chunkSize: chunkSize,
		total: CiphertextSize(size, chunkSize), chunks: numChunks(size, chunkSize),
		buf: make([]byte, 0, chunkSize+Overhead), out: make([]byte, 0, chunkSize)}, nil
}

// Offset is how many blob bytes were consumed: where to resume reading.
func (o *Opener) Offset() int64 { return o.seen }

// Size is the expected blob size.
func (o *Opener) Size() int64 { return o.total }

// Write consumes the next blob bytes.
func (o *Opener) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if int64(len(p)) > o.total-o.seen {
		o.err = fmt.Errorf("%w: longer than announced", ErrTampered)
		return 0, o.err
	}
	o.h.Write(p)
	n := len(p)
	for len(p) > 0 {
		if o.seen < HeaderSize {
			k := copy(o.hdr[o.seen:], p)
			p, o.seen = p[k:], o.seen+int64(k)
			if o.seen == HeaderSize {
				cs, err := parseHeader(o.hdr[:])
				if err == nil && cs != o.chunkSize {
					err = fmt.Errorf("%w: chunk size differs from the pointer", ErrTampered)
				}
				if err != nil {
					o.err = err
					return 0, err
				}
			}
			continue
		}
		want := o.chunkSize + Overhead
		if o.next == o.chunks-1 {
			want = int(o.total - HeaderSize - int64(o.chunkSize+Overhead)*o.next)
		}
		k := min(len(p), want-len(o.buf))
		o.buf = append(o.buf, p[:k]...)
		p, o.seen = p[k:], o.seen+int64(k)
		if len(o.buf) == want {
			if err := o.open(); err != nil {
				o.err = err
				return 0, err
			}
		}
	}
	return n, nil
}

func (o *Opener) open() error {
	last := o.next == o.chunks-1
	pt, err := o.aead.Open(o.out[:0], nonce(o.nonce[:], o.next, last), o.buf, o.hdr[:])
	if err != nil {
		return fmt.Errorf("%w: chunk %d fails authentication", ErrTampered, o.next)
	}
	o.buf = o.buf[:0]
	o.next++
	if _, err := o.dst.Write(pt); err != nil {
		return fmt.Errorf("attach: writing the file: %w", err)
	}
	return nil
}

// Close checks that the whole blob arrived and that its digest matches.
func (o *Opener) Close() error {
	if o.err != nil {
		return o.err
	}
	if o.seen < o.total || o.next < o.chunks {
		return ErrTruncated
	}
	if subtle.ConstantTimeCompare(o.h.Sum(nil), o.digest) != 1 {
		return fmt.Errorf("%w: digest mismatch", ErrTampered)
	}
	return nil
}
