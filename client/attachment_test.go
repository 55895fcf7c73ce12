package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sotto/client/attach"
	"sotto/relay"
	"sotto/relay/blobstore"
	"sotto/relay/sqlitestore"
)

// cutProxy forwards TCP to a target and, when armed, cuts the first
// connection whose traffic in one direction passes a threshold.
type cutProxy struct {
	ln     net.Listener
	target string
	up     atomic.Int64 // cut after this many client->server bytes (0: off)
	down   atomic.Int64 // cut after this many server->client bytes (0: off)
	cuts   atomic.Int32
	wg     sync.WaitGroup
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) serve(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	var once sync.Once
	closeBoth := func() { once.Do(func() { c.Close(); s.Close() }) }
	pipe := func(dst, src net.Conn, limit *atomic.Int64) {
		buf := make([]byte, 32<<10)
		var n int64
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if l := limit.Load(); l > 0 && n+int64(k) > l && limit.CompareAndSwap(l, 0) {
					// Forward up to the threshold, then cut.
					dst.Write(buf[:l-n])
					p.cuts.Add(1)
					closeBoth()
					return
				}
				if _, err := dst.Write(buf[:k]); err != nil {
					closeBoth()
					return
				}
				n += int64(k)
			}
			if err != nil {
				closeBoth()
				return
			}
		}
	}
	go pipe(s, c, &p.up)
	pipe(c, s, &p.down)
}

// blobRelay is a real relay with a blob store, behind a cutting proxy.
type blobRelay struct {
	*testRelay
	srv   *relay.Server
	idx   *blobstore.Index
	dir   string
	proxy *cutProxy
}

func startBlobRelay(t *testing.T, tweak func(*relay.BlobConfig)) *blobRelay {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), t.TempDir(), sqlitestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	idx, err := blobstore.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &blobRelay{testRelay: &testRelay{store: st}, dir: dir, idx: idx}
	cfg := r.config()
	r.useLogKey(cfg)
	cfg.Blobs = relay.BlobConfig{Index: idx, Dir: dir, JanitorEvery: 20 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg.Blobs)
	}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.srv = srv
	hs := httptest.NewServer(srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Run(ctx) }()
	r.proxy = startCutProxy(t, hs.Listener.Addr().String())
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
		hs.Close()
		idx.Close()
		st.Close()
	})
	r.url = "http://" + r.proxy.ln.Addr().String()
	return r
}

// blobFiles lists the complete blob files in the relay's blob folder.
func (r *blobRelay) blobFiles(t *testing.T) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(r.dir, "????????????????????????????????"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func writeRandomFile(t *testing.T, dir string, size int64) (string, []byte) {
	t.Helper()
	p := filepath.Join(dir, "file.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p, h.Sum(nil)
}

func fileDigest(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

// sendAndReceive sends a file from alice to bob and returns bob's message.
func sendFile(t *testing.T, alice *Client, bobEvents chan Event, path string, o FileOptions) *Message {
	t.Helper()
	sent, err := alice.SendFile(context.Background(), "bob", path, o)
	if err != nil {
		t.Fatal(err)
	}
	e := waitEvent(t, bobEvents, EventMessage)
	m := e.Message
	if !bytes.Equal(m.ID, sent.ID) || m.Attachment == nil {
		t.Fatalf("bob got %+v", m)
	}
	return m
}

// TestAttachmentRoundTrip200MB: a 200 MB file goes from alice to bob with
// the connection cut mid-upload and mid-download; both resume and bob's
// copy has the same SHA-256 as the original.
func TestAttachmentRoundTrip200MB(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("200 MB round trip")
	}
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	bob, bobEvents := r.enroll(t, code, "bob", true)

	const size = 200 << 20
	path, want := writeRandomFile(t, t.TempDir(), size)
	r.proxy.up.Store(70 << 20) // cut the upload after 70 MB
	var lastUp int64
	m := sendFile(t, alice, bobEvents, path, FileOptions{Progress: func(done, total int64) { lastUp = done }})
	if r.proxy.cuts.Load() != 1 {
		t.Fatalf("upload: %d cuts, want 1", r.proxy.cuts.Load())
	}
	if lastUp != attach.CiphertextSize(size, attach.DefaultChunkSize) {
		t.Fatalf("upload progress ended at %d", lastUp)
	}
	if m.Attachment.Size != size || m.Attachment.Name != "file.bin" {
		t.Fatalf("attachment %+v", m.Attachment)
	}

	r.proxy.down.Store(130 << 20) // cut the download after 130 MB
	out := filepath.Join(t.TempDir(), "got.bin")
	got, bm, err := bob.Download(ctx, m.ID, DownloadOptions{Out: out})
	if err != nil {
		t.Fatal(err)
	}
	if r.proxy.cuts.Load() != 2 {
		t.Fatalf("download: %d cuts in all, want 2", r.proxy.cuts.Load())
	}
	if got != out || bm.Attachment.Path != out {
		t.Fatalf("downloaded to %q, record says %q", got, bm.Attachment.Path)
	}
	if !bytes.Equal(fileDigest(t, out), want) {
		t.Fatal("downloaded file differs from the original")
	}
	// The history keeps where the file is.
	hist, err := bob.History(ctx, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 || hist[0].Attachment == nil || hist[0].Attachment.Path != out {
		t.Fatalf("history %+v", hist)
	}
}

func TestAttachmentTamperedAndTruncatedRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	bob, bobEvents := r.enroll(t, code, "bob", true)
	path, want := writeRandomFile(t, t.TempDir(), 300<<10)

	for _, c := range []struct {
		name   string
		damage func(p string) error
		want   error
	}{
		{"tampered", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[len(b)/2] ^= 0x01
			return os.WriteFile(p, b, 0o600)
		}, attach.ErrTampered},
		{"truncated", func(p string) error {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, st.Size()-100)
		}, attach.ErrTruncated},
		{"truncated at a chunk", func(p string) error {
			return os.Truncate(p, attach.HeaderSize+2*(attach.DefaultChunkSize+attach.Overhead))
		}, attach.ErrTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := map[string]bool{}
			for _, f := range r.blobFiles(t) {
				before[f] = true
			}
			m := sendFile(t, alice, bobEvents, path, FileOptions{})
			var blob string
			for _, f := range r.blobFiles(t) {
				if !before[f] {
					blob = f
				}
			}
			if blob == "" {
				t.Fatal("no new blob file on the relay")
			}
			if err := c.damage(blob); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			_, _, err := bob.Download(ctx, m.ID, DownloadOptions{Dir: dir})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("partial file left behind: %v", left)
			}
		})
	}
	// An undamaged one still downloads, into the default folder, even
	// when the relay stopped after committing it but before publishing the
	// file (simulated: the file moved back to its upload name).
	before := map[string]bool{}
	for _, f := range r.blobFiles(t) {
		before[f] = true
	}
	m := sendFile(t, alice, bobEvents, path, FileOptions{})
	for _, f := range r.blobFiles(t) {
		if !before[f] {
			if err := os.Rename(f, filepath.Join(r.dir, "tmp", filepath.Base(f)+".part")); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, _, err := bob.Download(ctx, m.ID, DownloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(got) != filepath.Join(bob.db.Dir(), "attachments") || !bytes.Equal(fileDigest(t, got), want) {
		t.Fatalf("downloaded %s wrong", got)
	}
}

func TestAttachmentLimitsAndExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, func(c *relay.BlobConfig) {
		c.MaxSize = 1 << 20
		c.Quota = 2 << 20
		c.TTL = time.Hour
		c.UploadTTL = 10 * time.Minute
	})
	code := r.code(t, 2, 7*24*time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	bob, bobEvents := r.enroll(t, code, "bob", true)

	big, _ := writeRandomFile(t, t.TempDir(), 1<<20+1)
	if _, err := alice.SendFile(ctx, "bob", big, FileOptions{}); !errors.Is(err, attach.ErrTooLarge) {
		t.Fatalf("over the size limit: %v", err)
	}
	small, _ := writeRandomFile(t, t.TempDir(), 700<<10)
	m := sendFile(t, alice, bobEvents, small, FileOptions{})
	sendFile(t, alice, bobEvents, small, FileOptions{})
	if _, err := alice.SendFile(ctx, "bob", small, FileOptions{}); !errors.Is(err, attach.ErrQuota) {
		t.Fatalf("over the quota: %v", err)
	}
	// Bob's quota is his own.
	if _, err := bob.SendFile(ctx, "alice", small, FileOptions{}); err != nil {
		t.Fatal(err)
	}

	// An abandoned upload slot expires after UploadTTL; complete blobs stay.
	tok, err := alice.blobs().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", r.url+"/v1/blobs", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Blob-Length", "1000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var slot struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&slot); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s %v", resp.Status, err)
	}
	resp.Body.Close()
	r.off.Store(int64(30 * time.Minute))
	id, _ := relay.ParseBlobID(slot.ID)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := r.idx.Blob(ctx, id); errors.Is(err, relay.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("abandoned upload not expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(r.blobFiles(t)); n != 3 {
		t.Fatalf("%d complete blobs left after the upload TTL, want 3", n)
	}

	// After the TTL the janitor deletes the blobs and their files.
	r.off.Store(int64(2 * time.Hour))
	deadline = time.Now().Add(20 * time.Second)
	for len(r.blobFiles(t)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("blobs not expired: %v", r.blobFiles(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, _, err := bob.Download(ctx, m.ID, DownloadOptions{Dir: t.TempDir()}); !errors.Is(err, attach.ErrNotFound) {
		t.Fatalf("expired blob: %v", err)
	}
	// The quota is charged per day of creation, not per blob (the relay
	// does not know whose blobs expired): the charges count until their
	// day leaves the TTL window, then the quota is free again.
	if _, err := alice.SendFile(ctx, "bob", small, FileOptions{}); !errors.Is(err, attach.ErrQuota) {
		t.Fatalf("right after expiry: %v, want ErrQuota", err)
	}
	r.off.Store(int64(49 * time.Hour))
	if _, err := alice.SendFile(ctx, "bob", small, FileOptions{}); err != nil {
		t.Fatalf("after the charges' window: %v", err)
	}
}

func TestAttachmentViewOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	bob, bobEvents := r.enroll(t, code, "bob", true)
	path, want := writeRandomFile(t, t.TempDir(), 100<<10)
	m := sendFile(t, alice, bobEvents, path, FileOptions{ViewOnce: true, Caption: "just once"})
	if !m.Attachment.ViewOnce || m.Text != "just once" {
		t.Fatalf("message %+v", m)
	}
	if _, _, err := bob.Download(ctx, m.ID, DownloadOptions{Dir: t.TempDir()}); err == nil {
		t.Fatal("view-once attachment written to a file")
	}
	var buf bytes.Buffer
	if _, bm, err := bob.Download(ctx, m.ID, DownloadOptions{Stream: &buf}); err != nil || !bm.Attachment.Opened {
		t.Fatalf("first view: %v", err)
	}
	if got := sha256.Sum256(buf.Bytes()); !bytes.Equal(got[:], want) {
		t.Fatal("view-once content differs")
	}
	if _, _, err := bob.Download(ctx, m.ID, DownloadOptions{Stream: io.Discard}); !errors.Is(err, ErrViewedOnce) {
		t.Fatalf("second view: %v", err)
	}
	// The key is gone from the store, not only hidden.
	rb, err := bob.db.Get(ctx, tblAttachments, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rb, []byte("pointer\":\"")) {
		t.Fatalf("pointer still stored: %s", rb)
	}
}

// TestBlobAPIAuthorization drives the relay's blob API by hand: no token,
// a forged token, an upload without the write key (even with the
// uploader's own token), a wrong offset, an incomplete blob, and
// downloads by the id alone.
func TestBlobAPIAuthorization(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	bob, _ := r.enroll(t, code, "bob", false)
	aliceTok, err := alice.blobs().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bobTok, err := bob.blobs().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, tok string, hdr map[string]string, body string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := do("POST", "/v1/blobs", "", map[string]string{"Blob-Length": "10"}, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %s", resp.Status)
	}
	forged := []byte(aliceTok)
	forged[len(forged)-3] ^= 1
	if resp := do("POST", "/v1/blobs", string(forged), map[string]string{"Blob-Length": "10"}, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("forged token: %s", resp.Status)
	}
	req, _ := http.NewRequest("POST", r.url+"/v1/blobs", nil)
	req.Header.Set("Authorization", "Bearer "+aliceTok)
	req.Header.Set("Blob-Length", "10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		ID       string `json:"id"`
		WriteKey string `json:"write_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %s %v", resp.Status, err)
	}
	resp.Body.Close()
	p := "/v1/blobs/" + created.ID
	key := func(k string, more ...string) map[string]string {
		h := map[string]string{"Blob-Write-Key": k}
		for i := 0; i+1 < len(more); i += 2 {
			h[more[i]] = more[i+1]
		}
		return h
	}
	wrong := []byte(created.WriteKey)
	wrong[0] ^= 1
	for _, c := range []struct {
		what, tok string
		hdr       map[string]string
	}{
		{"another device, no write key", bobTok, map[string]string{"Upload-Offset": "0"}},
		{"the uploader's own token, no write key", aliceTok, map[string]string{"Upload-Offset": "0"}},
		{"a wrong write key", aliceTok, key(string(wrong), "Upload-Offset", "0")},
		{"a short write key", "", key(created.WriteKey[:62], "Upload-Offset", "0")},
	} {
		if resp := do("PATCH", p, c.tok, c.hdr, "0123456789"); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("upload with %s: %s", c.what, resp.Status)
		}
	}
	// The write key alone is the upload's authorization: no token.
	if resp := do("PATCH", p, "", key(created.WriteKey, "Upload-Offset", "3"), "3456789"); resp.StatusCode != http.StatusConflict || resp.Header.Get("Upload-Offset") != "0" {
		t.Fatalf("wrong offset: %s %q", resp.Status, resp.Header.Get("Upload-Offset"))
	}
	if resp := do("PATCH", p, "", key(created.WriteKey, "Upload-Offset", "0"), "01234"); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Upload-Offset") != "5" {
		t.Fatalf("first half: %s", resp.Status)
	}
	if resp := do("GET", p, "", nil, ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("incomplete blob served: %s", resp.Status)
	}
	if resp := do("PATCH", p, "", key(created.WriteKey, "Upload-Offset", "5"), "56789X"); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("past the declared size: %s", resp.Status)
	}
	if resp := do("PATCH", p, "", key(created.WriteKey, "Upload-Offset", "5"), "56789"); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("second half: %s", resp.Status)
	}
	// Downloads need the id alone: the downloader shows no token, so the
	// relay cannot tie it to a device.
	if resp := do("GET", p, "", nil, ""); resp.StatusCode != http.StatusOK || resp.ContentLength != 10 {
		t.Fatalf("download without a token: %s", resp.Status)
	}
	if resp := do("GET", p, "", map[string]string{"Range": "bytes=4-"}, ""); resp.StatusCode != http.StatusPartialContent || resp.ContentLength != 6 {
		t.Fatalf("ranged download: %s %d", resp.Status, resp.ContentLength)
	}
	var unknown [16]byte
	if resp := do("GET", "/v1/blobs/"+hex.EncodeToString(unknown[:]), "", nil, ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown blob: %s", resp.Status)
	}
	// A revoked device's token stops working for uploads at once.
	acct, err := r.store.AccountByName(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Revoke(ctx, relay.DeviceAddr{Account: acct.ID, Device: alice.DeviceID()}); err != nil {
		t.Fatal(err)
	}
	if resp := do("POST", "/v1/blobs", aliceTok, map[string]string{"Blob-Length": "10"}, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("revoked device: %s", resp.Status)
	}
	// The counters moved.
	resp, err = http.Get(r.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"sotto_blobs_completed_total 1", "sotto_blob_upload_bytes_total 10", "sotto_blob_download_bytes_total 16", "sotto_blobs_refused_total 1"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// genFile is a generated file of any size that needs no disk: a fixed
// pseudo-random table of prime length, repeated.
type genFile struct{ size int64 }

var genTable = func() []byte {
	b := make([]byte, 1<<20+7)
	rand.Read(b)
	return b
}()

func (g genFile) ReadAt(b []byte, off int64) (int, error) {
	if off >= g.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), g.size-off))
	for i := 0; i < n; {
		i += copy(b[i:n], genTable[(off+int64(i))%int64(len(genTable)):])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// TestAttachment2GiBMemory uploads and downloads a generated 2 GiB file
// through a real relay (in this process) while sampling the heap: the
// peak stays at a few MiB whatever the size. Opt-in: SOTTO_ATTACH_2G=1
// (107 s on 2 loaded vCPUs, peak heap growth 2.9 MiB; 2 GiB of disk for
// the relay's blob).
func TestAttachment2GiBMemory(t *testing.T) {
	if testing.Short() || os.Getenv("SOTTO_ATTACH_2G") == "" {
		t.Skip("set SOTTO_ATTACH_2G=1 to move 2 GiB through a relay")
	}
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", false)
	bob, _ := r.enroll(t, code, "bob", false)
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	const size = attach.MaxFileSize
	start := time.Now()
	ptr, _, err := alice.blobs().Upload(ctx, genFile{size}, size, nil)
	if err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	h := sha256.New()
	if err := bob.blobs().Download(ctx, ptr, h, nil); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	want := sha256.New()
	io.Copy(want, io.NewSectionReader(genFile{size}, 0, size))
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatal("downloaded plaintext differs")
	}
	grow := peak.Load() - min(peak.Load(), base.HeapInuse)
	t.Logf("2 GiB: upload %v, download %v; heap in use at start %.1f MiB, peak growth %.1f MiB (client and relay together)",
		up, time.Since(start)-up, float64(base.HeapInuse)/(1<<20), float64(grow)/(1<<20))
	if grow > 64<<20 {
		t.Fatalf("heap grew by %d bytes: not bounded", grow)
	}
}

// TestAttachmentReachesOwnDevices: a file alice sends from her laptop shows
// on her phone (sync transcript) and the phone can fetch it too.
func TestAttachmentReachesOwnDevices(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := startBlobRelay(t, nil)
	code := r.code(t, 2, time.Hour)
	alice, _ := r.enroll(t, code, "alice", true)
	_, bobEvents := r.enroll(t, code, "bob", true)
	l, err := BeginLink(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveLink(ctx, l.Code()); err != nil {
		t.Fatal(err)
	}
	phoneEvents := make(chan Event, 100)
	phone, err := l.Finish(ctx, filepath.Join(t.TempDir(), "phone"), []byte("pw"), "phone",
		&Options{KDF: testKDF, MinPassphraseBits: anyPassphrase, OnEvent: func(e Event) { phoneEvents <- e }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { phone.Close() })
	if err := phone.Connect(ctx, ConnectOptions{Receive: true}); err != nil {
		t.Fatal(err)
	}
	path, want := writeRandomFile(t, t.TempDir(), 200<<10)
	sent := sendFile(t, alice, bobEvents, path, FileOptions{Caption: "for both"})
	e := waitEvent(t, phoneEvents, EventMessage)
	if !bytes.Equal(e.Message.ID, sent.ID) || !e.Message.Outgoing || !e.Message.Synced || e.Message.Attachment == nil ||
		e.Message.Text != "for both" || e.Message.Peer != "bob" {
		t.Fatalf("phone got %+v", e.Message)
	}
	got, _, err := phone.Download(ctx, sent.ID, DownloadOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fileDigest(t, got), want) {
		t.Fatal("phone's copy differs")
	}
}
