package testneed

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestSkip runs a child test with and without CI=true and checks that the
// same missing dependency skips it on a workstation and fails it under CI.
func TestSkip(t *testing.T) {
	if os.Getenv("TESTNEED_CHILD") == "1" {
		Skip(t, "frobnicator %s not installed", "v2")
		t.Fatal("Skip returned")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		wantOut  string
	}{
		{ci: "", wantFail: false, wantOut: "--- SKIP: TestSkip"},
		{ci: "false", wantFail: false, wantOut: "--- SKIP: TestSkip"},
		{ci: "true", wantFail: true, wantOut: "--- FAIL: TestSkip"},
	} {
		cmd := exec.Command(exe, "-test.run=^TestSkip$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTNEED_CHILD=1", EnvVar+"="+tc.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("CI=%q: failed=%v, want %v\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.wantOut) || !strings.Contains(string(out), "frobnicator v2 not installed") {
			t.Errorf("CI=%q: output lacks %q and the reason:\n%s", tc.ci, tc.wantOut, out)
		}
	}
}
