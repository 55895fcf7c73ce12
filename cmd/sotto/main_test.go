package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	_ "modernc.org/sqlite"
	"sotto/agent"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		// As main: an interrupt ends the command's context (a script's
		// kill -INT stops a server gracefully).
		"sotto": main,
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
			// An agent a failed script left running (sotto up) is
			// stopped with it.
			e.Defer(func() { stopAgents(e.WorkDir) })
			return startRelay(e, bin)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"invite":              cmdInvite,
			"waitfile":            cmdWaitFile,
			"relaysetkey":         cmdRelaySetKey,
			"relayspoilaccesskey": cmdRelaySpoilAccessKey,
			"relay":               cmdRelay,
			"setenvfile":          cmdSetenvFile,
			"setquoted":           cmdSetQuoted,
			"tlsrelay":            cmdTLSRelay,
		},
	})
}

// stopAgents interrupts the agents still running for the homes in dir
// (their pids from the homes' agent locks).
func stopAgents(dir string) {
	locks, _ := filepath.Glob(filepath.Join(dir, "*", agent.LockName))
	for _, l := range locks {
		if pid, ok := agent.Running(filepath.Dir(l)); ok && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
}

// relayProc is the relay of one script.
type relayProc struct {
	bin, data, addr string
	extra           []string // more sottod serve flags (relay start ARGS)
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
	cmd := exec.Command(r.bin, append(append([]string{"serve", "-data", r.data, "-listen", r.addr, "-log-level", "warn"}, r.tlsArgs...), r.extra...)...)
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

// relay stop|start [FLAGS...]: take the script's relay down or bring it
// back on the same address and data (with more sottod serve flags).
func cmdRelay(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || (args[0] == "stop" && len(args) != 1) {
		ts.Fatalf("usage: relay stop|start [FLAGS...]")
	}
	r := ts.Value(relayKey{}).(*relayProc)
	switch args[0] {
	case "stop":
		r.stop()
	case "start":
		r.extra = args[1:]
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

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// invite VAR USER [DAYS]: have the organization's admin invite USER and
// store the invitation in $VAR. The first use creates the organization as a
// person would: sottod admin bootstrap on the relay's host, then sotto admin
// init on the admin's device ($WORK/orgadmin, user orgadmin).
func cmdInvite(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: invite VAR USER [DAYS]")
	}
	days := "30"
	if len(args) == 3 {
		days = args[2]
	}
	lookPath := func(name string) string {
		for _, dir := range strings.Split(ts.Getenv("PATH"), string(os.PathListSeparator)) {
			if p := filepath.Join(dir, name); fileExists(p) {
				return p
			}
		}
		ts.Fatalf("%s not on the script's PATH", name)
		return ""
	}
	admin := ts.MkAbs("orgadmin")
	pass := ts.MkAbs(".orgadmin-pass")
	run := func(name string, a ...string) []byte {
		cmd := exec.Command(lookPath(name), a...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			ts.Fatalf("%s %v: %v\n%s", name, a, err, errb.String())
		}
		return out
	}
	if _, err := os.Stat(admin); err != nil {
		ts.Check(os.WriteFile(pass, []byte("correct horse battery staple admin\n"), 0o600))
		var b struct {
			Code string `json:"code"`
		}
		ts.Check(json.Unmarshal(run("sottod", "admin", "bootstrap", "-data", ts.Getenv("RELAYDATA"), "-relay", ts.Getenv("RELAY"), "--json"), &b))
		run("sotto", "--home", admin, "--passphrase-file", pass, "admin", "init", "--bootstrap", b.Code,
			"--user", "orgadmin", "--org", "Test Org", "--argon2-memory", "8", "--argon2-time", "1")
	}
	var inv struct {
		Invitation string `json:"invitation"`
	}
	ts.Check(json.Unmarshal(run("sotto", "--home", admin, "--passphrase-file", pass, "admin", "invite", "--days", days, "--json", args[1]), &inv))
	if inv.Invitation == "" {
		ts.Fatalf("no invitation for %s", args[1])
	}
	ts.Setenv(args[0], inv.Invitation)
}

// setenvfile VAR FILE REGEXP: set $VAR to the first submatch of REGEXP in
// FILE (e.g. a key a command printed, saved with cp stdout FILE).
func cmdSetenvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: setenvfile VAR FILE REGEXP")
	}
	m := regexp.MustCompile(args[2]).FindStringSubmatch(ts.ReadFile(args[1]))
	if len(m) < 2 {
		ts.Fatalf("%s: no match for %s", args[1], args[2])
	}
	ts.Setenv(args[0], m[1])
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

// relayspoilaccesskey USER: overwrite USER's unidentified access key in
// the relay's database with random bytes, as an attacker with the relay's
// disk would (the relay is stopped meanwhile).
func cmdRelaySpoilAccessKey(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: relayspoilaccesskey USER")
	}
	r := ts.Value(relayKey{}).(*relayProc)
	r.stop()
	defer func() { ts.Check(r.start()) }()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(ts.Getenv("RELAYDATA"), "relay.db")+"?_pragma=busy_timeout(10000)")
	ts.Check(err)
	defer db.Close()
	junk := make([]byte, 16)
	_, err = rand.Read(junk)
	ts.Check(err)
	res, err := db.ExecContext(context.Background(), `UPDATE access_keys SET key = ? WHERE account = (SELECT id FROM accounts WHERE username = ?)`, junk, args[0])
	ts.Check(err)
	if n, _ := res.RowsAffected(); n != 1 {
		ts.Fatalf("no access key of %s at the relay", args[0])
	}
}

// newOrg creates the organization of a test on a fresh relay as a person
// would: sottod admin bootstrap, then users[0]'s device (home dir/USER)
// runs admin init with the code, then invites every other user, who
// enrolls. sotto runs the sotto CLI (passphrase flags included).
func newOrg(t *testing.T, sottod, data, relayURL, dir string, sotto func(args ...string) string, users ...string) {
	t.Helper()
	out, err := exec.Command(sottod, "admin", "bootstrap", "-data", data, "-relay", relayURL, "--json").Output()
	if err != nil {
		t.Fatalf("sottod admin bootstrap: %v", err)
	}
	var b struct{ Code string }
	if err := json.Unmarshal(out, &b); err != nil || b.Code == "" {
		t.Fatalf("bootstrap code: %s %v", out, err)
	}
	kdf := []string{"--argon2-memory", "8", "--argon2-time", "1"}
	admin := filepath.Join(dir, users[0])
	sotto(append([]string{"--home", admin, "admin", "init", "--bootstrap", b.Code, "--user", users[0], "--org", "Test Org"}, kdf...)...)
	for _, u := range users[1:] {
		var inv struct{ Invitation string }
		if err := json.Unmarshal([]byte(sotto("--home", admin, "admin", "invite", "--json", u)), &inv); err != nil || inv.Invitation == "" {
			t.Fatalf("invitation for %s: %v", u, err)
		}
		sotto(append([]string{"--home", filepath.Join(dir, u), "enroll", "--invitation", inv.Invitation}, kdf...)...)
	}
}
