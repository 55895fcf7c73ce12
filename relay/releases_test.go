package relay_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"sotto/relay"
)

func TestWithReleasesServesFilesOnly(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "v1.0.0", "linux_amd64"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "v1.0.0", "linux_amd64", "manifest"), []byte("m\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, ".secret"), []byte("s"), 0o644))
	outside := filepath.Join(t.TempDir(), "outside")
	must(os.WriteFile(outside, []byte("o"), 0o644))
	must(os.Symlink(outside, filepath.Join(dir, "link")))
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("next")) })
	hs := httptest.NewServer(relay.WithReleases(dir, next))
	defer hs.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/releases/v1.0.0/linux_amd64/manifest"); code != 200 || body != "m\n" {
		t.Fatalf("a release file: %d %q", code, body)
	}
	for _, p := range []string{"/releases/", "/releases/v1.0.0/", "/releases/.secret", "/releases/link", "/releases/v1.0.0/linux_amd64/missing"} {
		if code, body := get(p); code != http.StatusNotFound && code != http.StatusMovedPermanently {
			t.Errorf("%s: %d %q, want 404", p, code, body)
		}
	}
	if _, body := get("/releases/../outside"); body == "o" {
		t.Fatal("served a file outside the release directory")
	}
	if code, body := get("/v1/other"); code != 200 || body != "next" {
		t.Fatalf("other routes: %d %q", code, body)
	}
	if relay.WithReleases("", next) == nil {
		t.Fatal("no handler without a release directory")
	}
}
