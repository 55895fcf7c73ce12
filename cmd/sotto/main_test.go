package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	_ "modernc.org/sqlite"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"sotto": func() {
			os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

var (
	sottodOnce sync.Once
	sottodBin  string
	sottodErr  error
)

// buildSottod builds the real relay once per test binary run.
func buildSottod(t *testing.T) string {
	sottodOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sotto-e2e-")
		if err != nil {
			sottodErr = err
			return
		}
		sottodBin = filepath.Join(dir, "sottod")
		out, err := exec.Command("go", "build", "-o", sottodBin, "sotto/cmd/sottod").CombinedOutput()
		if err != nil {
			sottodErr = fmt.Errorf("go build sotto/cmd/sottod: %v\n%s", err, out)
		}
	})
	if sottodErr != nil {
		t.Fatal(sottodErr)
	}
	return sottodBin
}

// TestScripts runs the end-to-end scenarios in testdata/*.txt, each against
// its own real relay (sottod serve on 127.0.0.1 with a fresh data
// directory) and the real sotto command.
func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end scripts start a relay")
	}
	bin := buildSottod(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			return startRelay(e, bin)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"newcode":     cmdNewCode,
			"waitfile":    cmdWaitFile,
			"relaysetkey": cmdRelaySetKey,
			"relay":       cmdRelay,
			"setquoted":   cmdSetQuoted,
			"tlsrelay":    cmdTLSRelay,
		},
	})
}

// relayProc is the relay of one script.
type relayProc struct {
	bin, data, addr string
	tlsArgs         []string // -tls-cert, -tls-key once tlsrelay ran
	cmd             *exec.Cmd
	logf            *os.File
}

// startRelay starts sottod for one script and sets $RELAY (its URL),
// $RELAYDATA (its data directory) and puts sottod on $PATH.
func startRelay(e *testscript.Env, bin string) error {
	data := filepath.Join(e.WorkDir, ".relay")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	r := &relayProc{bin: bin, data: data, addr: "127.0.0.1:0"}
	if err := r.start(); err != nil {
		return err
	}
	e.Values[relayKey{}] = r
	e.Defer(r.stop)
	e.Setenv("RELAY", "ws://"+r.addr)
	e.Setenv("RELAYDATA", data)
	e.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+e.Getenv("PATH"))
	return nil
}

type relayKey struct{}

// start runs the relay and waits until it listens; the first start picks a
// port, later ones reuse it.
func (r *relayProc) start() error {
	cmd := exec.Command(r.bin, append([]string{"serve", "-data", r.data, "-listen", r.addr, "-log-level", "warn"}, r.tlsArgs...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(r.data, "sottod.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	r.cmd, r.logf = cmd, logf
	urlc := make(chan string, 1)
	go func() {
		// Reads the relay's stdout until it exits (its pipe closes).
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "sottod: relay listening on "); ok && !sent {
				urlc <- strings.TrimSpace(u)
				sent = true
			}
		}
		if !sent {
			close(urlc)
		}
	}()
	select {
	case u, ok := <-urlc:
		if !ok {
			r.stop()
			return fmt.Errorf("sottod exited before listening (see %s)", logf.Name())
		}
		r.addr = strings.TrimPrefix(strings.TrimPrefix(u, "ws://"), "wss://")
		return nil
	case <-time.After(30 * time.Second):
		r.stop()
		return fmt.Errorf("sottod did not start listening")
	}
}

// stop interrupts the relay and waits for it to exit.
func (r *relayProc) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	r.logf.Close()
	r.cmd = nil
}

// relay stop|start: take the script's relay down or bring it back on the
// same address and data.
func cmdRelay(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: relay stop|start")
	}
	r := ts.Value(relayKey{}).(*relayProc)
	switch args[0] {
	case "stop":
		r.stop()
	case "start":
		ts.Check(r.start())
	default:
		ts.Fatalf("usage: relay stop|start")
	}
}

// setquoted VAR "GO-STRING": set $VAR to a Go-quoted string, so that a script
// can pass control, bidi and invisible characters as arguments.
func cmdSetQuoted(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: setquoted VAR \"GO-STRING\"")
	}
	v, err := strconv.Unquote(`"` + args[1] + `"`)
	ts.Check(err)
	ts.Setenv(args[0], v)
}

// newcode VAR [SEATS]: create an activation code and store it in $VAR.
func cmdNewCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: newcode VAR [SEATS]")
	}
	seats := "1"
	if len(args) == 2 {
		seats = args[1]
	}
	out, err := exec.Command(filepath.Join(strings.Split(ts.Getenv("PATH"), string(os.PathListSeparator))[0], "sottod"),
		"admin", "codes", "create", "-data", ts.Getenv("RELAYDATA"), "-seats", seats, "--json").Output()
	ts.Check(err)
	var c struct {
		Code string `json:"code"`
	}
	ts.Check(json.Unmarshal(out, &c))
	if c.Code == "" {
		ts.Fatalf("no code in %s", out)
	}
	ts.Setenv(args[0], c.Code)
}

// waitfile FILE: wait (up to a minute) until FILE exists, for handing data
// from a background command to the script.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("%s did not appear", args[0])
}

// relaysetkey [-unlogged] USER FROM: play a hostile relay that serves FROM's
// identity key as USER's, by editing the relay's database while it is
// stopped (so no cache hides the edit); "-" as FROM restores the key saved
// by the previous call. The relay also appends the binding to its key
// transparency log (transparency_test.go), unless -unlogged.
func cmdRelaySetKey(ts *testscript.TestScript, neg bool, args []string) {
	unlogged := len(args) == 3 && args[0] == "-unlogged"
	if unlogged {
		args = args[1:]
	}
	if neg || len(args) != 2 {
		ts.Fatalf("usage: relaysetkey [-unlogged] USER FROM")
	}
	r := ts.Value(relayKey{}).(*relayProc)
	r.stop()
	defer func() { ts.Check(r.start()) }()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.Getenv("RELAYDATA"), "relay.db")+"?_pragma=busy_timeout(10000)")
	ts.Check(err)
	defer db.Close()
	ctx := context.Background()
	var key []byte
	if args[1] == "-" {
		// The saved key is kept hex-encoded: an environment variable
		// cannot hold the NUL bytes a raw key may contain.
		key, err = hex.DecodeString(ts.Getenv("SAVED_IDENTITY_KEY"))
		ts.Check(err)
	} else {
		var old []byte
		ts.Check(db.QueryRowContext(ctx, `SELECT identity_key FROM accounts WHERE username = ?`, args[0]).Scan(&old))
		ts.Setenv("SAVED_IDENTITY_KEY", hex.EncodeToString(old))
		ts.Check(db.QueryRowContext(ctx, `SELECT identity_key FROM accounts WHERE username = ?`, args[1]).Scan(&key))
	}
	res, err := db.ExecContext(ctx, `UPDATE accounts SET identity_key = ? WHERE username = ?`, key, args[0])
	ts.Check(err)
	if n, _ := res.RowsAffected(); n != 1 {
		ts.Fatalf("no account %s", args[0])
	}
	if !unlogged {
		ts.Check(logBinding(ctx, db, args[0], key))
	}
}
