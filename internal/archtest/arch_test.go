package archtest

import (
	"encoding/json"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Dir        string
	Name       string
	GoFiles    []string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "sotto/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 2 {
		t.Fatalf("go list found %d packages; expected the whole module", len(pkgs))
	}
	return pkgs
}

// TestPackageDocs checks that every package has exactly one package doc comment.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		docs := 0
		for _, f := range p.GoFiles {
			af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "" {
				docs++
			}
		}
		if docs != 1 {
			t.Errorf("%s: %d package doc comments, want exactly 1", p.ImportPath, docs)
		}
	}
}

// forbidden lists, for a package path prefix, the imports its non-test code must not use.
var forbidden = []struct {
	prefix string
	banned []string
	why    string
}{
	{"sotto/signal", []string{"net", "net/http", "database/sql", "log", "log/slog", "os/exec", "sotto/relay", "sotto/client", "sotto/wire", "modernc.org/sqlite", "github.com/coder/websocket"},
		"protocol packages know nothing of networking, storage or logging"},
	{"sotto/mls", []string{"net", "net/http", "database/sql", "log", "log/slog", "os/exec", "sotto/relay", "sotto/client", "sotto/wire", "modernc.org/sqlite", "github.com/coder/websocket"},
		"protocol packages know nothing of networking, storage or logging"},
	{"sotto/transparency", []string{"net", "net/http", "database/sql", "log", "log/slog", "os", "os/exec", "sotto/relay", "sotto/client", "sotto/wire", "modernc.org/sqlite", "github.com/coder/websocket"},
		"protocol packages know nothing of networking, storage or logging"},
	{"sotto/orgcert", []string{"net", "net/http", "database/sql", "log", "log/slog", "os", "os/exec", "sotto/relay", "sotto/client", "modernc.org/sqlite", "github.com/coder/websocket"},
		"protocol packages know nothing of networking, storage or logging"},
	{"sotto/release", []string{"net", "net/http", "database/sql", "log", "log/slog", "os/exec", "sotto/relay", "sotto/client", "sotto/wire", "modernc.org/sqlite", "github.com/coder/websocket"},
		"the release format is bytes in, bytes out: devices, the relay and the project's publisher share it"},
	{"sotto/relay", []string{"sotto/client", "sotto/signal", "sotto/mls", "sotto/web"},
		"the relay handles opaque ciphertext and knows nothing of client code or plaintext"},
	{"sotto/wire", []string{"sotto/client", "sotto/relay"},
		"wire formats sit below the client and the relay"},
	{"sotto/witness", []string{"sotto/relay", "sotto/client", "sotto/wire", "sotto/cmd", "database/sql", "modernc.org/sqlite"},
		"the witness runs away from the relay: it knows only the log's format and its own state file"},
	{"sotto/client", []string{"sotto/relay", "sotto/cmd", "sotto/agent", "sotto/web"},
		"the client core knows nothing of the relay's internals, of the agent that runs it, or of a UI"},
	{"sotto/client/conversation", []string{"net", "net/http", "database/sql", "os/exec", "sotto/client/transport", "sotto/relay", "sotto/cmd", "sotto/agent", "sotto/web", "sotto/wire", "modernc.org/sqlite", "github.com/coder/websocket", "charm.land", "github.com/charmbracelet"},
		"a conversation's records and rules work on the local store alone: the network, the wire and the front ends stay with the facade"},
	{"sotto/client/keylog", []string{"sotto/relay", "sotto/cmd", "sotto/agent", "sotto/web", "charm.land", "github.com/charmbracelet"},
		"key transparency is a part of the client core: no relay internals, no front end"},
	{"sotto/agent", []string{"sotto/relay", "sotto/cmd", "charm.land", "github.com/charmbracelet", "sotto/web"},
		"the agent serves its front ends through its API and knows nothing of the terminal ones"},
	{"sotto/web", []string{"sotto/relay", "sotto/cmd"},
		"the web app is served by the device's own agent from its own binary, never by the relay"},
}

func banned(imp, b string) bool {
	return imp == b || strings.HasPrefix(imp, b+"/")
}

// TestImportDirection enforces the import rules of the architecture.
func TestImportDirection(t *testing.T) {
	checked := 0
	for _, p := range listPackages(t) {
		for _, rule := range forbidden {
			if p.ImportPath != rule.prefix && !strings.HasPrefix(p.ImportPath, rule.prefix+"/") {
				continue
			}
			checked++
			for _, imp := range p.Imports {
				for _, b := range rule.banned {
					if banned(imp, b) {
						t.Errorf("%s imports %s: %s", p.ImportPath, imp, rule.why)
					}
				}
			}
		}
	}
	t.Logf("checked %d package/rule pairs", checked)
}

// clientParts lists the packages split out of the client core, with the
// only packages under sotto/client each may import: a part declares the
// small interfaces it needs (its store, its relay requests) instead of
// importing the client or another part.
var clientParts = map[string][]string{
	"sotto/client/keylog":       {"sotto/client/store", "sotto/client/transport", "sotto/client/content"},
	"sotto/client/sessions":     {"sotto/client/store"},
	"sotto/client/linktransfer": {},
	"sotto/client/account":      {"sotto/client/store", "sotto/client/transport"},
	"sotto/client/orgstate":     {"sotto/client/store", "sotto/client/org", "sotto/client/content"},
	"sotto/client/conversation": {"sotto/client/store", "sotto/client/content", "sotto/client/attach"},
	"sotto/client/sealedsender": {"sotto/client/store", "sotto/client/transport", "sotto/client/content", "sotto/client/sessions"},
}

// facadeUsers are the packages under sotto/client that may import the
// client facade (sotto/client) itself: they sit above it, as a front end
// does. Every other package under sotto/client is a part the facade wires,
// and a part importing the facade would be an import cycle in the making
// and a second way in to the core.
var facadeUsers = map[string]string{
	"sotto/client/call": "the call manager drives a *client.Client (its signalling rides the client's messages); issue 13 makes it a part",
}

// clientLeaves are the parts of the client core that import no other
// package under sotto/client: formats and mechanisms the others build on.
var clientLeaves = []string{"sotto/client/content", "sotto/client/store", "sotto/client/transport", "sotto/client/org", "sotto/client/update"}

// TestClientSubpackagesImportNoFacade enforces facadeUsers: only the
// facade wires the parts of the client core.
func TestClientSubpackagesImportNoFacade(t *testing.T) {
	found := 0
	for _, p := range listPackages(t) {
		if !strings.HasPrefix(p.ImportPath, "sotto/client/") {
			continue
		}
		found++
		if slices.Contains(p.Imports, "sotto/client") {
			if _, ok := facadeUsers[p.ImportPath]; !ok {
				t.Errorf("%s imports the client facade sotto/client: a part of the client core is wired by the facade, never the other way round", p.ImportPath)
			}
		}
	}
	if found == 0 {
		t.Fatal("no package under sotto/client")
	}
}

// TestClientLeavesImportNoClientPart enforces clientLeaves.
func TestClientLeavesImportNoClientPart(t *testing.T) {
	found := 0
	for _, p := range listPackages(t) {
		if !slices.Contains(clientLeaves, p.ImportPath) {
			continue
		}
		found++
		for _, imp := range p.Imports {
			if imp == "sotto/client" || strings.HasPrefix(imp, "sotto/client/") {
				t.Errorf("%s imports %s: it is a leaf of the client core, below every other part", p.ImportPath, imp)
			}
		}
	}
	if found != len(clientLeaves) {
		t.Errorf("found %d of the %d client leaves listed", found, len(clientLeaves))
	}
}

// TestClientPartsImportNoClient enforces clientParts.
func TestClientPartsImportNoClient(t *testing.T) {
	found := 0
	for _, p := range listPackages(t) {
		allowed, ok := clientParts[p.ImportPath]
		if !ok {
			continue
		}
		found++
		for _, imp := range p.Imports {
			if imp != "sotto/client" && !strings.HasPrefix(imp, "sotto/client/") {
				continue
			}
			if !slices.Contains(allowed, imp) {
				t.Errorf("%s imports %s: a part of the client core imports only %v from sotto/client", p.ImportPath, imp, allowed)
			}
		}
	}
	if found != len(clientParts) {
		t.Errorf("found %d of the %d client parts listed", found, len(clientParts))
	}
}
