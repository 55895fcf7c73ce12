package signalpeer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"sotto/internal/testneed"
	"sotto/interop/signalpeer"
)

// An implementation is a kind of peer the tests can start.
type implementation struct {
	name  string
	start func(t *testing.T) *signalpeer.Peer
}

var (
	nodeImpl       = implementation{name: "node", start: startNode}
	nodeLatestImpl = implementation{name: "node-latest", start: startNodeLatest}
	goImpl         = implementation{name: "go", start: startGo}
)

// buildDir holds the Go peer binary for the whole test run.
var buildDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "signal-peer-build-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// libsignalVersion is the pinned @signalapp/libsignal-client (see docs/interop.md);
// libsignalLatestVersion the newest release, which requires SPQR, pinned in
// interop/signal-node-latest.
const (
	libsignalVersion       = "0.90.0"
	libsignalLatestVersion = "0.103.0"
)

const nodeHint = "install Node.js and run `npm ci` in interop/signal-node and interop/signal-node-latest (`make deps`)"

// nodePeerScript returns the path of peer.mjs, skipping the test when Node.js is not
// installed and failing it when the npm dependencies are missing.
func nodePeerScript(t testing.TB) (node, script string) {
	t.Helper()
	return nodeLib(t, "signal-node", libsignalVersion)
}

// nodeLib checks that interop/<sub> holds libsignal-client at version and returns
// node and that directory's absolute path, with peer.mjs for the script when sub is
// signal-node.
func nodeLib(t testing.TB, sub, version string) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testneed.Skip(t, "node not found (%v): to run the libsignal interop tests, %s", err, nodeHint)
	}
	dir, err := filepath.Abs(filepath.Join("..", sub))
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(dir, "node_modules", "@signalapp", "libsignal-client", "package.json")
	b, err := os.ReadFile(mod)
	if errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Node.js is installed but libsignal-client is not: run `npm ci` in interop/%s (%s missing)", sub, mod)
	}
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatalf("%s: %v", mod, err)
	}
	if pkg.Version != version {
		t.Fatalf("libsignal-client %s is installed in interop/%s, the tests are pinned to %s: run `npm ci` there", pkg.Version, sub, version)
	}
	if sub != "signal-node" {
		return node, dir
	}
	return node, filepath.Join(dir, "peer.mjs")
}

// pairings lists the ordered pairs the pairing tests run: every pair of the Go peer
// and the pinned libsignal, and the Go peer with the newest libsignal both ways.
func pairings() [][2]implementation {
	var pairs [][2]implementation
	for _, a := range []implementation{nodeImpl, goImpl} {
		for _, b := range []implementation{nodeImpl, goImpl} {
			pairs = append(pairs, [2]implementation{a, b})
		}
	}
	return append(pairs, [2]implementation{nodeLatestImpl, goImpl}, [2]implementation{goImpl, nodeLatestImpl})
}

// needPeers skips or fails the test at once when a Node peer of the pair is missing.
func needPeers(t *testing.T, a, b implementation) {
	t.Helper()
	if a.name != goImpl.name || b.name != goImpl.name {
		nodePeerScript(t)
	}
	if a.name == nodeLatestImpl.name || b.name == nodeLatestImpl.name {
		nodeLib(t, "signal-node-latest", libsignalLatestVersion)
	}
}

// startNodeLatest starts peer.mjs on the newest libsignal-client release.
func startNodeLatest(t *testing.T) *signalpeer.Peer {
	t.Helper()
	node, script := nodePeerScript(t)
	_, lib := nodeLib(t, "signal-node-latest", libsignalLatestVersion)
	return startPeer(t, "node-latest", node, script, "--lib", lib)
}

func startNode(t *testing.T) *signalpeer.Peer {
	t.Helper()
	node, script := nodePeerScript(t)
	return startPeer(t, "node", node, script)
}

var goBuild struct {
	once sync.Once
	path string
	err  error
}

// goPeerBinary builds cmd/signal-peer once per test run.
func goPeerBinary(t testing.TB) string {
	t.Helper()
	goBuild.once.Do(func() {
		gocmd, err := exec.LookPath("go")
		if err != nil {
			goBuild.err = err
			return
		}
		out := filepath.Join(buildDir, "signal-peer")
		cmd := exec.Command(gocmd, "build", "-o", out, "sotto/cmd/signal-peer")
		if b, err := cmd.CombinedOutput(); err != nil {
			goBuild.err = fmt.Errorf("go build sotto/cmd/signal-peer: %v\n%s", err, b)
			return
		}
		goBuild.path = out
	})
	if goBuild.err != nil {
		t.Fatal(goBuild.err)
	}
	return goBuild.path
}

func startGo(t *testing.T) *signalpeer.Peer {
	t.Helper()
	return startPeer(t, "go", goPeerBinary(t))
}

func startPeer(t *testing.T, label string, argv ...string) *signalpeer.Peer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := signalpeer.Start(ctx, label, argv...)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		err := p.Close()
		cancel()
		if err != nil {
			t.Errorf("%s peer: %v", label, err)
		}
		if s := p.Stderr(); s != "" && t.Failed() {
			t.Logf("%s peer stderr:\n%s", label, s)
		}
	})
	return p
}
