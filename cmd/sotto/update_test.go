package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"sotto/release/publish"
	"sotto/transparency"
	"sotto/witness"
)

// TestUpdateScripts runs testdata/update/*.txt: releases published into a
// release directory with a test release key, mirrored by the script's
// relay, and installed (or refused) by sotto binaries built with that key
// pinned (-X sotto/internal/version.releaseKey), as make release pins the
// project's.
func TestUpdateScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end scripts start a relay and build binaries")
	}
	bin := buildSottod(t)
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "release.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(priv.Seed())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	buildDir := t.TempDir() // stamped binaries, shared by the scripts
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/update",
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			e.Setenv("RELEASE_PUB", hex.EncodeToString(pub))
			e.Setenv("RELEASE_KEY_FILE", keyFile)
			e.Setenv("BUILDS", buildDir)
			e.Defer(func() { stopAgents(e.WorkDir) }) // a failed script's sotto up
			return startRelay(e, bin)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"invite":     cmdInvite,
			"relay":      cmdRelay,
			"setenvfile": cmdSetenvFile,
			"buildsotto": cmdBuildSotto,
			"relpublish": cmdRelPublish,
			"relwitness": cmdRelWitness,
		},
	})
}

// testCommit is the source commit the tests stamp into, and name in the
// manifest of, version v.
func testCommit(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:20])
}

// buildsotto VERSION: build sotto stamped with VERSION, a commit and the
// test release key, into $BUILDS/VERSION/sotto (once per test run).
func cmdBuildSotto(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: buildsotto VERSION")
	}
	v := args[0]
	out := filepath.Join(ts.Getenv("BUILDS"), v, "sotto")
	if fileExists(out) {
		return
	}
	ldflags := "-X sotto/internal/version.version=" + v + " -X sotto/internal/version.commit=" + testCommit(v) +
		" -X sotto/internal/version.releaseKey=" + ts.Getenv("RELEASE_PUB")
	b, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", out, "sotto/cmd/sotto").CombinedOutput()
	if err != nil {
		ts.Fatalf("go build: %v\n%s", err, b)
	}
}

// relpublish DIR VERSION MIN-VERSION [PLATFORM]: publish $BUILDS/VERSION/sotto
// (or, for a VERSION never built, the script's file fake-sotto) as VERSION
// for PLATFORM (default this one) into the release directory DIR, signed
// with the test release key, and append it to the release log.
func cmdRelPublish(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 || len(args) > 4 {
		ts.Fatalf("usage: relpublish DIR VERSION MIN-VERSION [PLATFORM]")
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if len(args) == 4 {
		platform = args[3]
	}
	file := filepath.Join(ts.Getenv("BUILDS"), args[1], "sotto")
	if !fileExists(file) {
		file = ts.MkAbs("fake-sotto")
	}
	key, err := publish.LoadKey(ts.Getenv("RELEASE_KEY_FILE"))
	ts.Check(err)
	_, err = publish.Publish(ts.MkAbs(args[0]), key, publish.Release{Version: args[1], MinVersion: args[2], Commit: testCommit(args[1]),
		Platform: platform, Files: map[string]string{"sotto": file}}, time.Now())
	ts.Check(err)
}

// relwitness DIR WITNESS-DIR: have the organization's release witness (its
// key and state in WITNESS-DIR, made by sotto admin witness init) co-sign
// the release log's head, in process (the same witness.Witness that sotto
// admin witness serve runs).
func cmdRelWitness(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: relwitness DIR WITNESS-DIR")
	}
	wdir := ts.MkAbs(args[1])
	wkey, err := witness.LoadKey(wdir)
	ts.Check(err)
	pub, err := hex.DecodeString(ts.Getenv("RELEASE_PUB"))
	ts.Check(err)
	w, err := witness.New(witness.Config{Dir: wdir, Key: wkey, LogKey: pub, Logger: slog.New(slog.DiscardHandler)})
	ts.Check(err)
	ts.Check(publish.Witness(context.Background(), ts.MkAbs(args[0]), localWitness{w}))
}

type localWitness struct{ w *witness.Witness }

func (l localWitness) AddCheckpoint(_ context.Context, old uint64, proof []transparency.Hash, head []byte) ([]byte, error) {
	return l.w.AddCheckpoint(witness.Request{OldSize: old, Proof: proof, Head: head})
}
