// Package vectortest locates and loads the MLS working group's JSON test
// vectors for tests. The folder is named by the environment variable
// SOTTO_MLS_VECTORS, or defaults to ../shared/vectors/mls relative to the
// module root (the directory holding go.mod).
package vectortest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"sotto/internal/testneed"
)

// EnvVar names the environment variable that overrides the vector folder.
const EnvVar = "SOTTO_MLS_VECTORS"

// Dir returns the vector folder, or "" when it cannot be found.
func Dir() string {
	if d := os.Getenv(EnvVar); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "..", "shared", "vectors", "mls")
		}
		up := filepath.Dir(d)
		if up == d {
			return ""
		}
		d = up
	}
}

// Load decodes the vector file name into v, skipping the test when the
// vector folder or file is absent (failing it under CI: see testneed).
func Load(t testing.TB, name string, v any) {
	t.Helper()
	b, err := ReadFile(name)
	if err != nil {
		testneed.Skip(t, "MLS vectors not found (%v); set %s to the folder holding %s", err, EnvVar, name)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
}

// ReadFile returns the raw contents of the vector file name.
func ReadFile(name string) ([]byte, error) {
	dir := Dir()
	if dir == "" {
		return nil, os.ErrNotExist
	}
	return os.ReadFile(filepath.Join(dir, name))
}

// Hex is a byte string that unmarshals from a JSON hex string.
type Hex []byte

// UnmarshalJSON decodes a hex string; null leaves the value nil.
func (h *Hex) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// Counter tallies vector cases per outcome and logs a summary.
type Counter struct {
	Run, Passed int
	Skipped     map[uint16]int
}

// Name is the subtest name of case i (its index in the vector file) for
// cipher suite cs: "suite=1/case=3", so that -run 'Vectors/suite=1/' selects
// a suite and the failing case is named in the test's output.
func Name(cs uint16, i int) string { return fmt.Sprintf("suite=%d/case=%d", cs, i) }

// Case runs one vector case as the subtest name and counts its outcome: a
// subtest that fails is counted as failed, one that skips (for its cipher
// suite cs, which this code does not implement) as skipped for cs, any
// other as passed.
func (c *Counter) Case(t *testing.T, name string, cs uint16, f func(t *testing.T)) {
	t.Helper()
	c.Run++
	skipped := false
	ok := t.Run(name, func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		f(t)
	})
	switch {
	case !ok:
	case skipped:
		c.Skip(cs)
	default:
		c.Passed++
	}
}

// Skip records a case skipped for cipher suite cs.
func (c *Counter) Skip(cs uint16) {
	if c.Skipped == nil {
		c.Skipped = map[uint16]int{}
	}
	c.Skipped[cs]++
}

// Summary logs the tally for file name, and fails the test if a case
// neither passed nor was skipped, or if no case ran at all.
func (c *Counter) Summary(t testing.TB, name string) {
	t.Helper()
	skipped := 0
	for _, n := range c.Skipped {
		skipped += n
	}
	t.Logf("%s: run %d, passed %d, skipped by suite %v", name, c.Run, c.Passed, c.Skipped)
	if c.Run == 0 {
		t.Errorf("%s: no vector cases", name)
	}
	if c.Passed+skipped != c.Run {
		t.Errorf("%s: %d cases failed", name, c.Run-c.Passed-skipped)
	}
}
