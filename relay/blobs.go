package relay

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sotto/wire"
)

// BlobID names a blob: 16 random bytes, which are also the capability to
// download it.
type BlobID [16]byte

func (id BlobID) String() string { return hex.EncodeToString(id[:]) }

// ParseBlobID parses the hex form printed by String.
func ParseBlobID(s string) (BlobID, error) {
	var id BlobID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, withReason(ErrBadRequest, "bad blob id")
	}
	copy(id[:], b)
	return id, nil
}

// Blob is the index record of an opaque blob (attachment ciphertext). It
// names no uploader: the id is the capability to read the blob, and the
// write key, which only the uploader got (at creation, stored here only as
// its hash), the capability to upload its bytes and to delete it.
type Blob struct {
	ID           BlobID
	WriteKeyHash [32]byte // SHA-256 of the write key
	Size         int64    // declared total size
	Committed    int64    // bytes durably written; == Size when complete
	Created      time.Time
	Expires      time.Time
}

// BlobWriteKeySize is the size of a blob's write key.
const BlobWriteKeySize = 32

// BlobCharge is what a new blob is charged to: the quota is per device,
// but the index keeps per device only the bytes it created each day,
// never which blobs (see BlobIndex.CreateBlob).
type BlobCharge struct {
	Uploader DeviceAddr
	Quota    int64         // bytes per Window
	Window   time.Duration // a charge counts this long (the blob TTL)
}

// chargeDay is the UTC day number of t, the unit of blob charges.
func chargeDay(t time.Time) int64 { return t.UnixMilli() / (24 * 3600 * 1000) }

// ChargeDays returns the day of t and the first day whose charges still
// count against a quota over window: the days that overlap (t-window, t],
// plus one, so that a blob created late on the oldest day still counts
// while it can exist.
func ChargeDays(t time.Time, window time.Duration) (day, first int64) {
	day = chargeDay(t)
	return day, day - int64((window+24*time.Hour-1)/(24*time.Hour))
}

// Complete reports whether the whole blob was uploaded.
func (b Blob) Complete() bool { return b.Committed == b.Size }

// ErrQuota rejects a blob that would take a device over its storage quota.
var ErrQuota = errors.New("relay: blob storage quota exceeded")

// BlobIndex stores the blob records; the bytes live in files (BlobConfig.Dir).
// Nothing in it links a blob to the device that uploaded it.
//
//   - CreateBlob stores b and adds b.Size to the uploader's charge for the
//     day of b.Created, atomically, unless the uploader's charges of the
//     days ChargeDays(b.Created, c.Window) counts plus b.Size exceed
//     c.Quota (ErrQuota: nothing stored). Charges are per (device, day)
//     sums: deleting or expiring a blob does not refund its charge, which
//     stops counting once its day leaves the window.
//   - Blob returns ErrNotFound for an unknown id.
//   - SetCommitted records how many bytes of the blob are durable and,
//     when expires is not zero, moves its expiry.
//   - ExpiredBlobs lists at most limit blobs with Expires <= now.
//   - DeleteBlob removes a record (no error when absent).
//   - ExpireCharges deletes the charges of days before day.
type BlobIndex interface {
	CreateBlob(ctx context.Context, b Blob, c BlobCharge) error
	Blob(ctx context.Context, id BlobID) (Blob, error)
	SetCommitted(ctx context.Context, id BlobID, committed int64, expires time.Time) error
	ExpiredBlobs(ctx context.Context, now time.Time, limit int) ([]BlobID, error)
	DeleteBlob(ctx context.Context, id BlobID) error
	ExpireCharges(ctx context.Context, day int64) error
}

// BlobConfig configures the blob store. It is off unless Index and Dir are set.
type BlobConfig struct {
	Index   BlobIndex
	Dir     string        // blob files; Dir/tmp holds uploads in progress
	MaxSize int64         // per blob (2 GiB + encryption overhead)
	Quota   int64         // per device: bytes of the blobs it created within the last TTL (10 GiB)
	TTL     time.Duration // blobs are deleted this long after creation (30 days)
	// UploadTTL is how long an upload may stay incomplete (24 h, at most
	// TTL): abandoned uploads are deleted then (their charge stays).
	UploadTTL    time.Duration
	TokenTTL     time.Duration // lifetime of a blob upload token (10 min)
	JanitorEvery time.Duration // how often expired blobs are deleted (1 min)
}

// DefaultBlobConfig returns the defaults (without Index and Dir).
func DefaultBlobConfig() BlobConfig {
	return BlobConfig{
		MaxSize:      2<<30 + 1<<20, // a 2 GiB file plus its chunk tags
		Quota:        10 << 30,
		TTL:          30 * 24 * time.Hour,
		UploadTTL:    24 * time.Hour,
		TokenTTL:     10 * time.Minute,
		JanitorEvery: time.Minute,
	}
}

// HTTP headers of the blob API.
const (
	hdrBlobLength   = "Blob-Length"
	hdrUploadOffset = "Upload-Offset"
	// hdrWriteKey carries a blob's write key (hex) on PATCH and DELETE.
	hdrWriteKey = "Blob-Write-Key"
)

// blobService serves /v1/blobs.
type blobService struct {
	s       *Server
	cfg     BlobConfig
	macKey  []byte   // authenticates blob tokens; per process
	locks   sync.Map // BlobID -> chan struct{} (one writer per blob)
	created atomic.Uint64
	done    atomic.Uint64
	upBytes atomic.Uint64
	dnBytes atomic.Uint64
	expired atomic.Uint64
	deleted atomic.Uint64 // by their uploader, before the TTL
	refused atomic.Uint64 // size or quota
}

// initBlobs sets up the blob store when configured.
func (s *Server) initBlobs() error {
	cfg := s.cfg.Blobs
	if cfg.Index == nil || cfg.Dir == "" {
		return nil
	}
	d := DefaultBlobConfig()
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = d.MaxSize
	}
	if cfg.Quota <= 0 {
		cfg.Quota = d.Quota
	}
	if cfg.TTL <= 0 {
		cfg.TTL = d.TTL
	}
	if cfg.UploadTTL <= 0 {
		cfg.UploadTTL = d.UploadTTL
	}
	cfg.UploadTTL = min(cfg.UploadTTL, cfg.TTL)
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = d.TokenTTL
	}
	if cfg.JanitorEvery <= 0 {
		cfg.JanitorEvery = d.JanitorEvery
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "tmp"), 0o700); err != nil {
		return fmt.Errorf("relay: blob dir: %w", err)
	}
	s.blobs = &blobService{s: s, cfg: cfg, macKey: randomBytes(32)}
	return nil
}

// runBlobJanitor deletes expired blobs until ctx ends.
func (b *blobService) runJanitor(ctx context.Context) {
	t := time.NewTicker(b.cfg.JanitorEvery)
	defer t.Stop()
	for {
		b.expire(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// expire deletes the blobs whose TTL has passed and the charges that no
// longer count.
func (b *blobService) expire(ctx context.Context) {
	if _, first := ChargeDays(b.s.cfg.Now(), b.cfg.TTL); ctx.Err() == nil {
		if err := b.cfg.Index.ExpireCharges(ctx, first); err != nil {
			b.s.log.Warn("expiring blob charges", "err", err)
		}
	}
	for ctx.Err() == nil {
		ids, err := b.cfg.Index.ExpiredBlobs(ctx, b.s.cfg.Now(), 100)
		if err != nil {
			b.s.log.Warn("listing expired blobs", "err", err)
			return
		}
		for _, id := range ids {
			if err := b.remove(ctx, id); err != nil {
				b.s.log.Warn("deleting expired blob", "err", err)
				return
			}
			b.expired.Add(1)
		}
		if len(ids) < 100 {
			return
		}
	}
}

func (b *blobService) remove(ctx context.Context, id BlobID) error {
	lk, err := b.lock(ctx, id)
	if err != nil {
		return err
	}
	defer func() {
		unlock(lk)
		// A writer that waits on the old lock finds no record and stops.
		b.locks.Delete(id)
	}()
	for _, p := range []string{b.path(id), b.tmpPath(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("relay: %w", err)
		}
	}
	return b.cfg.Index.DeleteBlob(ctx, id)
}

func (b *blobService) path(id BlobID) string { return filepath.Join(b.cfg.Dir, id.String()) }
func (b *blobService) tmpPath(id BlobID) string {
	return filepath.Join(b.cfg.Dir, "tmp", id.String()+".part")
}

// lock makes the caller the only writer of blob id; pass the result to
// unlock.
func (b *blobService) lock(ctx context.Context, id BlobID) (chan struct{}, error) {
	v, _ := b.locks.LoadOrStore(id, make(chan struct{}, 1))
	ch := v.(chan struct{})
	select {
	case ch <- struct{}{}:
		return ch, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func unlock(ch chan struct{}) { <-ch }

// ---- tokens ----

const (
	tokenBody   = 16 + 4 + 8 + 1
	tokenUpload = 1 // flag: the device may create blobs
)

type blobToken struct {
	dev     DeviceAddr
	expires time.Time
	upload  bool
}

func (b *blobService) mint(t blobToken) string {
	buf := make([]byte, tokenBody, tokenBody+sha256.Size)
	copy(buf, t.dev.Account[:])
	binary.BigEndian.PutUint32(buf[16:], t.dev.Device)
	binary.BigEndian.PutUint64(buf[20:], uint64(t.expires.Unix()))
	if t.upload {
		buf[28] = tokenUpload
	}
	m := hmac.New(sha256.New, b.macKey)
	m.Write([]byte("sotto/blob-token/v1"))
	m.Write(buf)
	return base64.RawURLEncoding.EncodeToString(m.Sum(buf))
}

func (b *blobService) verify(tok string) (blobToken, error) {
	// The decoder skips CR and LF, so check the encoded length first: one
	// token has exactly one accepted spelling.
	if len(tok) != base64.RawURLEncoding.EncodedLen(tokenBody+sha256.Size) {
		return blobToken{}, ErrUnauthenticated
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(raw) != tokenBody+sha256.Size {
		return blobToken{}, ErrUnauthenticated
	}
	m := hmac.New(sha256.New, b.macKey)
	m.Write([]byte("sotto/blob-token/v1"))
	m.Write(raw[:tokenBody])
	if !hmac.Equal(m.Sum(nil), raw[tokenBody:]) {
		return blobToken{}, ErrUnauthenticated
	}
	var t blobToken
	copy(t.dev.Account[:], raw[:16])
	t.dev.Device = binary.BigEndian.Uint32(raw[16:])
	t.expires = time.Unix(int64(binary.BigEndian.Uint64(raw[20:])), 0)
	t.upload = raw[28]&tokenUpload != 0
	if !b.s.cfg.Now().Before(t.expires) {
		return blobToken{}, ErrUnauthenticated
	}
	return t, nil
}

// blobToken answers BlobTokenRequest on an authenticated connection. The
// token is needed only to create a blob (the quota is per device);
// uploading its bytes, deleting it and downloading it are authorized by
// the blob's own capabilities, so that no device-bound token links an
// uploader and a downloader. A device whose subscription expired gets a
// token that cannot create.
func (c *conn) blobToken() (*wire.BlobTokenResponse, error) {
	b := c.s.blobs
	if b == nil {
		return nil, fmt.Errorf("%w: this relay stores no attachments", ErrNotFound)
	}
	now := c.s.cfg.Now()
	t := blobToken{dev: c.dev, expires: now.Add(b.cfg.TokenTTL), upload: now.Before(c.acct.Expires)}
	return &wire.BlobTokenResponse{Token: b.mint(t), ExpiresMs: t.expires.UnixMilli(),
		MaxBlobSize: b.cfg.MaxSize, QuotaBytes: b.cfg.Quota}, nil
}

// ---- HTTP ----

func (b *blobService) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/blobs", b.serveCreate)
	mux.HandleFunc("/v1/blobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPatch:
			b.servePatch(w, r)
		case http.MethodHead:
			b.serveHead(w, r)
		case http.MethodGet:
			b.serveGet(w, r)
		case http.MethodDelete:
			b.serveDelete(w, r)
		default:
			w.Header().Set("Allow", "DELETE, GET, HEAD, PATCH")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// httpStatus maps an error to a status code and a safe message.
func (b *blobService) fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	msg := "internal error"
	switch {
	case errors.Is(err, errWriteKey):
		code, msg = http.StatusForbidden, "wrong or missing blob write key"
	case errors.Is(err, ErrUnauthenticated):
		code, msg = http.StatusUnauthorized, "blob token invalid or expired"
	case errors.Is(err, ErrForbidden):
		code, msg = http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrNotFound):
		code, msg = http.StatusNotFound, "no such blob"
	case errors.Is(err, ErrTooLarge):
		code, msg = http.StatusRequestEntityTooLarge, "blob too large"
		b.refused.Add(1)
	case errors.Is(err, ErrQuota):
		code, msg = http.StatusInsufficientStorage, "blob storage quota exceeded"
		b.refused.Add(1)
	case errors.Is(err, ErrBadRequest):
		code, msg = http.StatusBadRequest, safeMessage(err, ErrBadRequest, "bad request")
	case errors.Is(err, context.Canceled):
		code, msg = http.StatusServiceUnavailable, "shutting down"
	}
	if code == http.StatusInternalServerError {
		b.s.log.Error("blob request failed", "err", err)
	} else {
		b.s.log.Debug("blob request refused", "status", code, "err", err)
	}
	http.Error(w, msg, code)
}

func (b *blobService) auth(r *http.Request) (blobToken, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return blobToken{}, ErrUnauthenticated
	}
	return b.verify(tok)
}

// errWriteKey refuses a PATCH or DELETE without the blob's write key.
var errWriteKey = fmt.Errorf("%w: wrong or missing blob write key", ErrForbidden)

// checkWriteKey checks the request's write key against the blob's hash.
func checkWriteKey(r *http.Request, bl Blob) error {
	key, err := hex.DecodeString(r.Header.Get(hdrWriteKey))
	if err != nil || len(key) != BlobWriteKeySize {
		return errWriteKey
	}
	h := sha256.Sum256(key)
	if subtle.ConstantTimeCompare(h[:], bl.WriteKeyHash[:]) != 1 {
		return errWriteKey
	}
	return nil
}

// authCreator authenticates a request that creates a blob: the device
// must still exist and not be revoked (tokens outlive a revocation by up
// to TokenTTL otherwise).
func (b *blobService) authCreator(r *http.Request) (blobToken, error) {
	t, err := b.auth(r)
	if err != nil {
		return t, err
	}
	d, err := b.s.dir.Device(r.Context(), t.dev)
	if errors.Is(err, ErrNotFound) || (err == nil && d.Revoked) {
		return t, ErrUnauthenticated
	}
	return t, err
}

// blob loads the record named in the path, refusing expired ones.
func (b *blobService) blob(r *http.Request) (Blob, error) {
	id, err := ParseBlobID(r.PathValue("id"))
	if err != nil {
		return Blob{}, err
	}
	bl, err := b.cfg.Index.Blob(r.Context(), id)
	if err != nil {
		return Blob{}, err
	}
	if !b.s.cfg.Now().Before(bl.Expires) {
		return Blob{}, ErrNotFound
	}
	return bl, nil
}

func (b *blobService) serveCreate(w http.ResponseWriter, r *http.Request) {
	t, err := b.authCreator(r)
	if err == nil && !t.upload {
		err = fmt.Errorf("%w: subscription expired", ErrForbidden)
	}
	if err != nil {
		b.fail(w, err)
		return
	}
	size, err := strconv.ParseInt(r.Header.Get(hdrBlobLength), 10, 64)
	if err != nil || size < 0 {
		b.fail(w, badRequest("missing or bad %s", hdrBlobLength))
		return
	}
	if size > b.cfg.MaxSize {
		b.fail(w, ErrTooLarge)
		return
	}
	var id BlobID
	copy(id[:], randomBytes(len(id)))
	writeKey := randomBytes(BlobWriteKeySize)
	now := b.s.cfg.Now()
	bl := Blob{ID: id, WriteKeyHash: sha256.Sum256(writeKey), Size: size, Created: now, Expires: now.Add(b.cfg.UploadTTL)}
	if size == 0 {
		bl.Expires = now.Add(b.cfg.TTL)
	}
	charge := BlobCharge{Uploader: t.dev, Quota: b.cfg.Quota, Window: b.cfg.TTL}
	if err := b.cfg.Index.CreateBlob(r.Context(), bl, charge); err != nil {
		b.fail(w, err)
		return
	}
	if size == 0 {
		// Nothing to upload: complete at once.
		if err := b.finish(id); err != nil {
			b.fail(w, err)
			return
		}
	}
	b.created.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(struct {
		ID       string `json:"id"`
		WriteKey string `json:"write_key"`
		Expires  int64  `json:"expires_ms"`
	}{id.String(), hex.EncodeToString(writeKey), bl.Expires.UnixMilli()})
}

// finish publishes a fully written blob file.
func (b *blobService) finish(id BlobID) error {
	tmp := b.tmpPath(id)
	if f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY, 0o600); err != nil {
		return fmt.Errorf("relay: blob: %w", err)
	} else if err := f.Close(); err != nil {
		return fmt.Errorf("relay: blob: %w", err)
	}
	if err := os.Rename(tmp, b.path(id)); err != nil {
		return fmt.Errorf("relay: blob: %w", err)
	}
	if d, err := os.Open(b.cfg.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	b.done.Add(1)
	return nil
}

// servePatch appends to a blob. The write key is the authorization: no
// device token, so the relay learns nothing of who uploads beyond the
// creation (a device revoked meanwhile may finish an upload it began).
func (b *blobService) servePatch(w http.ResponseWriter, r *http.Request) {
	id, err := ParseBlobID(r.PathValue("id"))
	if err != nil {
		b.fail(w, err)
		return
	}
	// A resumed upload may arrive before the relay noticed the old
	// connection died: wait for its handler to finish.
	lk, err := b.lock(r.Context(), id)
	if err != nil {
		b.fail(w, err)
		return
	}
	defer unlock(lk)
	bl, err := b.blob(r)
	if err == nil {
		err = checkWriteKey(r, bl)
	}
	if err != nil {
		b.fail(w, err)
		return
	}
	off, err := strconv.ParseInt(r.Header.Get(hdrUploadOffset), 10, 64)
	if err != nil || off != bl.Committed {
		w.Header().Set(hdrUploadOffset, strconv.FormatInt(bl.Committed, 10))
		http.Error(w, "upload offset mismatch", http.StatusConflict)
		return
	}
	remaining := bl.Size - bl.Committed
	if r.ContentLength > remaining {
		b.fail(w, ErrTooLarge)
		return
	}
	// The upload holds the blob's lock, which deleting it (the janitor,
	// one blob at a time, or its uploader) waits for: a body that stalls
	// must not outlive the blob.
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Now().Add(bl.Expires.Sub(b.s.cfg.Now()))); err == nil {
		defer rc.SetReadDeadline(time.Time{})
	}
	n, werr := b.write(id, off, io.LimitReader(r.Body, remaining))
	if werr == nil && r.ContentLength < 0 {
		// A body of unannounced length must end at the declared size.
		if k, _ := r.Body.Read(make([]byte, 1)); k > 0 {
			werr = ErrTooLarge
		}
	}
	committed := off + n
	if n > 0 {
		var expires time.Time
		if committed == bl.Size {
			// Complete: the blob now lives its full TTL.
			expires = bl.Created.Add(b.cfg.TTL)
		}
		if err := b.cfg.Index.SetCommitted(context.WithoutCancel(r.Context()), id, committed, expires); err != nil {
			b.fail(w, err)
			return
		}
		b.upBytes.Add(uint64(n))
	}
	if errors.Is(werr, ErrTooLarge) {
		b.fail(w, werr)
		return
	}
	if werr != nil {
		b.s.log.Debug("blob upload interrupted", "blob", id.String(), "committed", committed, "err", werr)
		b.fail(w, withReason(ErrBadRequest, "upload interrupted"))
		return
	}
	if committed == bl.Size && bl.Size > 0 {
		if err := b.finish(id); err != nil {
			b.fail(w, err)
			return
		}
	}
	w.Header().Set(hdrUploadOffset, strconv.FormatInt(committed, 10))
	w.WriteHeader(http.StatusNoContent)
}

// write appends the body to the blob's temporary file at off and syncs
// what it wrote, even when the body ends early (a dropped connection).
func (b *blobService) write(id BlobID, off int64, body io.Reader) (int64, error) {
	f, err := os.OpenFile(b.tmpPath(id), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("relay: blob: %w", err)
	}
	buf := make([]byte, 256<<10)
	n, cerr := io.CopyBuffer(io.NewOffsetWriter(f, off), onlyReader{body}, buf)
	if err := f.Sync(); err != nil && cerr == nil {
		cerr = err
		n = 0
	}
	if err := f.Close(); err != nil && cerr == nil {
		cerr = err
		n = 0
	}
	return n, cerr
}

// onlyReader hides WriterTo/ReaderFrom so CopyBuffer uses the buffer.
type onlyReader struct{ io.Reader }

// serveHead and serveGet need only the blob id, the read capability (16
// random bytes), and no token: a downloader is not asked who it is.
func (b *blobService) serveHead(w http.ResponseWriter, r *http.Request) {
	bl, err := b.blob(r)
	if err != nil {
		b.fail(w, err)
		return
	}
	w.Header().Set(hdrUploadOffset, strconv.FormatInt(bl.Committed, 10))
	w.Header().Set(hdrBlobLength, strconv.FormatInt(bl.Size, 10))
	w.WriteHeader(http.StatusOK)
}

func (b *blobService) serveGet(w http.ResponseWriter, r *http.Request) {
	bl, err := b.blob(r)
	if err == nil && !bl.Complete() {
		err = fmt.Errorf("%w: upload not complete", ErrNotFound)
	}
	if err != nil {
		b.fail(w, err)
		return
	}
	f, err := os.Open(b.path(bl.ID))
	if errors.Is(err, os.ErrNotExist) {
		// The relay stopped between committing the last bytes and
		// publishing the file: publish it now.
		if lk, lerr := b.lock(r.Context(), bl.ID); lerr == nil {
			if _, serr := os.Stat(b.tmpPath(bl.ID)); serr == nil {
				if ferr := b.finish(bl.ID); ferr != nil {
					b.s.log.Warn("publishing blob", "err", ferr)
				}
			}
			unlock(lk)
		}
		f, err = os.Open(b.path(bl.ID))
	}
	if err != nil {
		b.fail(w, fmt.Errorf("%w: blob file: %v", ErrNotFound, err))
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(&countingWriter{ResponseWriter: w, n: &b.dnBytes}, r, "", bl.Created, f)
}

// serveDelete deletes a blob before its TTL for whoever presents its
// write key, which only the uploader got: knowing the id (the read
// capability) gets 403. It answers 404 for an unknown or expired blob. No
// token: a device whose subscription ended may still take its files down.
func (b *blobService) serveDelete(w http.ResponseWriter, r *http.Request) {
	bl, err := b.blob(r)
	if err == nil {
		err = checkWriteKey(r, bl)
	}
	if err != nil {
		b.fail(w, err)
		return
	}
	// remove waits for an upload in progress to finish its segment.
	if err := b.remove(context.WithoutCancel(r.Context()), bl.ID); err != nil {
		b.fail(w, err)
		return
	}
	b.deleted.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(uint64(n))
	return n, err
}

// ReadFrom keeps the response's sendfile path (ServeContent copies the
// file with io.Copy).
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	c.n.Add(uint64(n))
	return n, err
}

func (b *blobService) writeMetrics(w io.Writer) {
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("sotto_blobs_created_total", "Blob upload slots created.", b.created.Load())
	counter("sotto_blobs_completed_total", "Blobs fully uploaded.", b.done.Load())
	counter("sotto_blob_upload_bytes_total", "Blob bytes durably written.", b.upBytes.Load())
	counter("sotto_blob_download_bytes_total", "Blob bytes served.", b.dnBytes.Load())
	counter("sotto_blobs_expired_total", "Blobs deleted after their TTL.", b.expired.Load())
	counter("sotto_blobs_deleted_total", "Blobs deleted by their uploader before their TTL.", b.deleted.Load())
	counter("sotto_blobs_refused_total", "Blob uploads refused for size or quota.", b.refused.Load())
}
