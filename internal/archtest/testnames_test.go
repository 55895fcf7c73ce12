package archtest

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestTestFileNames checks that test files are named for what they test:
// no review_*_test.go or *_review_test.go, which name how a test came to be
// written rather than what it covers.
func TestTestFileNames(t *testing.T) {
	root := filepath.Join("..", "..")
	seen := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata":
				return filepath.SkipDir
			}
			return nil
		}
		name := d.Name()
		if !strings.HasSuffix(name, "_test.go") {
			return nil
		}
		seen++
		if strings.HasPrefix(name, "review_") || strings.HasSuffix(name, "_review_test.go") {
			t.Errorf("%s: name the file for what it tests", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 10 {
		t.Fatalf("found %d test files under %s; expected the whole module", seen, root)
	}
}
