package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sotto/relay/sqlitestore"
)

// validConfig is DefaultConfig with the one setting that has no default,
// for tests of Validate (nothing is opened there).
func validConfig() Config {
	c := DefaultConfig()
	c.DataDir = "/srv/sotto-test-data"
	return c
}

// noConfigFiles points the default config files away from the user's and
// fails the test if a system one would be read.
func noConfigFiles(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	if _, err := os.Stat(systemConfigFile); err == nil {
		t.Fatalf("%s exists on this machine: the test cannot run without a config file", systemConfigFile)
	}
}

// TestServeWithoutDataDir: with neither -data nor a config file, serve and
// the admin commands say so, and nothing appears in the working directory.
func TestServeWithoutDataDir(t *testing.T) {
	noConfigFiles(t)
	cwd := t.TempDir()
	t.Chdir(cwd)
	for _, args := range [][]string{
		{"serve", "-listen", "127.0.0.1:0", "-turn-listen", ""},
		{"admin", "usage"},
		{"admin", "bootstrap"},
	} {
		var out, errb strings.Builder
		if code := run(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "no data directory: give -data DIR") {
			t.Errorf("sottod %v: exit %d, stderr %q; want 2 and the missing data directory", args, code, errb.String())
		}
	}
	if ents, _ := os.ReadDir(cwd); len(ents) != 0 {
		t.Errorf("the working directory got %v", ents)
	}
}

// TestConfigFileDataDir: the config file names the data directory (relative
// to the file's folder) and other flags; serve and the admin commands find
// the same database from any working directory; the command line wins over
// the file.
func TestConfigFileDataDir(t *testing.T) {
	noConfigFiles(t)
	etc := t.TempDir()
	conf := filepath.Join(etc, "sottod.conf")
	if err := os.WriteFile(conf, []byte("# the relay\ndata relay-data\nlisten = 127.0.0.1:0\nturn-listen =\nblob-dir off\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	t.Chdir(elsewhere)

	ctx, cancel := context.WithCancel(context.Background())
	var out, errb lockedBuffer
	done := make(chan int)
	go func() { done <- serveMain(ctx, []string{"-config", conf}, &out, &errb) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "relay listening") {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited %d: %s%s", code, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("serve did not start: %s%s", out.String(), errb.String())
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, errb.String())
	}
	data := filepath.Join(etc, "relay-data")
	if want := "data directory " + data + " (from " + conf + ")"; !strings.Contains(out.String(), want) {
		t.Errorf("serve printed %q, want %q", out.String(), want)
	}
	if _, err := os.Stat(filepath.Join(data, sqlitestore.FileName)); err != nil {
		t.Errorf("no database in the config's data directory: %v", err)
	}
	if ents, _ := os.ReadDir(elsewhere); len(ents) != 0 {
		t.Errorf("the working directory got %v", ents)
	}

	// The admin commands read the same file from yet another folder.
	t.Chdir(t.TempDir())
	var aout, aerr strings.Builder
	if code := run([]string{"admin", "usage", "-config", conf, "--json"}, &aout, &aerr); code != 0 {
		t.Fatalf("admin usage with the config file: exit %d: %s", code, aerr.String())
	}
	// -data on the command line wins over the file; an admin command other
	// than bootstrap never makes a database.
	empty := t.TempDir()
	aerr.Reset()
	if code := run([]string{"admin", "usage", "-config", conf, "-data", empty}, &aout, &aerr); code != 2 || !strings.Contains(aerr.String(), "no relay database in "+empty) {
		t.Errorf("admin usage -data EMPTY: exit %d, stderr %q", code, aerr.String())
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("an admin command created %v", ents)
	}
}

// TestConfigFileErrors: every malformed line and unknown setting is named
// with its line, and the command does not start.
func TestConfigFileErrors(t *testing.T) {
	noConfigFiles(t)
	conf := filepath.Join(t.TempDir(), "sottod.conf")
	if err := os.WriteFile(conf, []byte("data /tmp/x\nlisten\nlistn 127.0.0.1:0\nconfig other.conf\nmailbox-ttl soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if code := run([]string{"serve", "-config", conf}, &out, &errb); code != 2 || !strings.Contains(errb.String(), conf+":2: want `name value`") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if err := os.WriteFile(conf, []byte("data /tmp/x\nlistn 127.0.0.1:0\nconfig other.conf\nmailbox-ttl soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	code := run([]string{"serve", "-config", conf}, &out, &errb)
	for _, want := range []string{conf + `:2: unknown setting "listn"`, conf + `:3: unknown setting "config"`, conf + ":4: mailbox-ttl"} {
		if code != 2 || !strings.Contains(errb.String(), want) {
			t.Errorf("exit %d, stderr %q; want %q", code, errb.String(), want)
		}
	}
	errb.Reset()
	if code := run([]string{"serve", "-config", filepath.Join(t.TempDir(), "missing.conf")}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "config file") {
		t.Errorf("a missing -config file: exit %d, stderr %q", code, errb.String())
	}
}
