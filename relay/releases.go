package relay

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
)

// ReleasesPrefix is where a relay mirrors release files (package
// release/publish's directory layout) for `sotto update`.
const ReleasesPrefix = "/releases/"

// WithReleases serves the release directory dir, read-only, under
// ReleasesPrefix and passes every other request to next. dir "" serves
// none. The relay only carries the bytes: a device checks every one of
// them against the release key it pins and its organization's approval,
// so a relay that serves other bytes changes nothing but what it serves.
// No directory listings, no dot files, no symlinks out of dir.
func WithReleases(dir string, next http.Handler) http.Handler {
	if dir == "" {
		return next
	}
	files := http.FileServer(http.FS(releaseFS{os.DirFS(dir)}))
	mux := http.NewServeMux()
	mux.Handle("GET "+ReleasesPrefix, http.StripPrefix(strings.TrimSuffix(ReleasesPrefix, "/"), files))
	mux.Handle("/", next)
	return mux
}

// releaseFS refuses directories and dot files, so that a mirror shows
// only the files a device asks for by name.
type releaseFS struct{ fs.FS }

var errHidden = errors.New("relay: not a release file")

func (r releaseFS) Open(name string) (fs.File, error) {
	parts := strings.Split(name, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, ".") {
			return nil, fs.ErrNotExist
		}
		// No symlinks: the mirror serves what is in dir, nothing it points to.
		if st, err := fs.Lstat(r.FS, strings.Join(parts[:i+1], "/")); err != nil || st.Mode()&fs.ModeSymlink != 0 {
			return nil, fs.ErrNotExist
		}
	}
	f, err := r.FS.Open(path.Clean(name))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fs.ErrNotExist
		}
		return nil, errors.Join(errHidden, err)
	}
	return f, nil
}
