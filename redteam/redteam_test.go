package redteam

import (
	"context"
	"os"
	"strings"
	"testing"
)

// TestAttacks mounts every attack of the registry against a real relay and
// real clients: each must be stopped with its defence on and, where the
// defence has a switch, get through with it off.
func TestAttacks(t *testing.T) {
	ctx := context.Background()
	for _, a := range Registry() {
		t.Run(a.Name, func(t *testing.T) {
			res := RunAttack(ctx, t.TempDir(), a)
			if res.Err != nil {
				t.Fatalf("could not mount the attack: %v", res.Err)
			}
			t.Logf("tried: %s", a.Threat)
			if !res.On.Stopped {
				t.Fatalf("the attack got through: %s", res.On.Detail)
			}
			t.Logf("stopped by: %s: %s", a.Defence, res.On.Detail)
			if res.Off != nil {
				if res.Off.Stopped {
					t.Fatalf("with the defence off (%s) the attack was still stopped: %s", a.Switch, res.Off.Detail)
				}
				t.Logf("with %s: %s", a.Switch, res.Off.Detail)
			}
		})
	}
}

// TestRegistry: names are unique and every entry says how its defence
// was checked off.
func TestRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, a := range Registry() {
		if seen[a.Name] {
			t.Errorf("two attacks named %s", a.Name)
		}
		seen[a.Name] = true
		if a.Threat == "" || a.Defence == "" || a.Run == nil {
			t.Errorf("%s: threat, defence and Run are required", a.Name)
		}
		if (a.Switch == "") == (a.Verified == "") {
			t.Errorf("%s: exactly one of Switch and Verified must be set", a.Name)
		}
	}
}

// TestArchitectureTable: docs/architecture.md carries the registry's table
// (go run ./cmd/sotto-redteam -table prints it).
func TestArchitectureTable(t *testing.T) {
	b, err := os.ReadFile("../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const begin, end = "<!-- redteam table: begin -->\n", "<!-- redteam table: end -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/architecture.md has no %q ... %q section", begin, end)
	}
	if got, want := doc[i+len(begin):j], Table(Registry()); got != want {
		t.Errorf("docs/architecture.md's red-team table differs from the registry; replace it with the output of go run ./cmd/sotto-redteam -table:\n%s", want)
	}
}
