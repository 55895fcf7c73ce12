// Package testneed lets a test say that something it needs (a tool, a
// service, a data folder) is missing: a skip on a developer's machine, a
// failure under CI, so that a CI run never passes on tests that did not run.
package testneed

import (
	"fmt"
	"os"
	"testing"
)

// EnvVar names the environment variable that marks a CI run. CI systems set
// CI=true; .ci/run sets it too.
const EnvVar = "CI"

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv(EnvVar) == "true" }

// Skip ends the test because a dependency is missing, with the reason given
// by format and args: under CI it fails the test (t.Fatalf), elsewhere it
// skips it (t.Skipf). Use it only for a missing dependency; a test skipped
// by choice (testing.Short, an opt-in variable) calls t.Skip itself.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (%s=true: a missing dependency fails the test)", msg, EnvVar)
	}
	t.Skip(msg)
}
