package agent

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"

	"sotto/client/attach"
)

// Files as bytes over the API, shared by the 1:1 and group endpoints: a
// file uploaded as a request's body, and a file's decrypted bytes
// streamed as the answer (docs/agent-api.md, Attachments).

// upload is a file uploaded as a request's body (any Content-Type but
// JSON), named by ?name=, with ?caption= and ?view_once=true.
type upload struct {
	Path     string // where the body was written, in a private folder
	Caption  string
	ViewOnce bool
	dir      string
}

// Close removes the uploaded file and its folder.
func (u *upload) Close() error { return os.RemoveAll(u.dir) }

// isJSON reports whether a request's body is JSON (else: a file's bytes).
func isJSON(r *http.Request) bool {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return ct == "application/json"
}

// fileRequest reads a request to send a file: JSON into req naming an
// absolute path (path returns it), or the file's bytes as the body, which
// receiveUpload keeps in a private folder (the caller closes the upload).
// A JSON request gives a nil upload.
func (h *handler) fileRequest(r *http.Request, req any, path func() string) (*upload, error) {
	if !isJSON(r) {
		return h.receiveUpload(r)
	}
	if err := decode(r, req); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(path()) {
		return nil, badRequest("path %q is not absolute", path())
	}
	return nil, nil
}

// receiveUpload writes a request's body into a fresh private folder of
// HOME; the caller closes the upload.
func (h *handler) receiveUpload(r *http.Request) (*upload, error) {
	q := r.URL.Query()
	if q.Get("name") == "" {
		return nil, badRequest("missing name")
	}
	dir, err := os.MkdirTemp(h.a.cfg.Home, ".upload-")
	if err != nil {
		return nil, err
	}
	u := &upload{Path: filepath.Join(dir, attach.SafeName(q.Get("name"))), Caption: q.Get("caption"),
		ViewOnce: q.Get("view_once") == "true", dir: dir}
	f, err := os.OpenFile(u.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = io.Copy(f, r.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		u.Close()
		return nil, fmt.Errorf("agent: upload: %w", err)
	}
	return u, nil
}

// lazyWriter sets the answer's headers on the first write, so that an
// error before any byte is still answered as an error.
type lazyWriter struct {
	w         http.ResponseWriter
	name, typ string
	started   bool
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", l.typ)
		l.w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": l.name}))
		l.w.Header().Set("X-Content-Type-Options", "nosniff")
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(p)
}

// streamFile answers a file's bytes, which fetch writes (name and typ as
// the sender declared them). An error before the first byte is answered
// as an error; after it, the answer is cut so the client sees it
// truncated rather than complete.
func streamFile(w http.ResponseWriter, name, typ string, fetch func(io.Writer) error) {
	if typ == "" {
		typ = "application/octet-stream"
	}
	if name = attach.SafeName(name); name == "" {
		name = "file"
	}
	lw := &lazyWriter{w: w, name: name, typ: typ}
	err := fetch(lw)
	switch {
	case err != nil && !lw.started:
		writeError(w, err)
	case err != nil:
		panic(http.ErrAbortHandler)
	case !lw.started:
		_, _ = lw.Write(nil) // an empty file
	}
}

// rawDevice is device for the endpoints that answer bytes, not JSON: it
// reports whether the request may go on (else it answered).
func (h *handler) rawDevice(w http.ResponseWriter, r *http.Request) bool {
	if h.a.c.Locked() {
		writeError(w, errLocked)
		return false
	}
	h.a.touch()
	h.a.awaitOnline(r.Context())
	return true
}
