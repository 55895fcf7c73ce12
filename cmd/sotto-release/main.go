// Command sotto-release is the project's side of the release log: it makes
// the release key, publishes a release build (signed manifest, files, a new
// log head signed with the release key) into a release directory, and has
// the organization's release witness co-sign the log's head.
//
//	sotto-release keygen --key FILE
//	sotto-release publish --key FILE --dir RELEASES --dist DIST --version V --commit C [--min-version V] [--platforms P,...]
//	sotto-release witness --dir RELEASES --witness URL
//
// The directory is static files: serve it from any web server, or have the
// relay mirror it (sottod serve -releases DIR). Devices check everything in
// it (package release); serving it grants nothing.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"sotto/release"
	"sotto/release/publish"
	"sotto/witness"
)

const usage = `usage:
  sotto-release keygen --key FILE          (prints the public key: make release RELEASE_KEY=HEX)
  sotto-release publish --key FILE --dir RELEASES --dist DIST --version V --commit C [--min-version V] [--platforms P,...]
  sotto-release witness --dir RELEASES --witness URL
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("sotto-release "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", "", "the release key file")
	dir := fs.String("dir", "", "the release directory")
	dist := fs.String("dist", "", "the release build (scripts/release-build.sh output: DIST/GOOS_GOARCH/...)")
	ver := fs.String("version", "", "the release's version, e.g. v1.2.0")
	commit := fs.String("commit", "", "the source commit it was built from")
	minVer := fs.String("min-version", "v0.0.1", "the oldest version that may update to this one")
	plats := fs.String("platforms", "linux/amd64,linux/arm64,darwin/arm64,windows/amd64", "platforms to publish")
	wurl := fs.String("witness", "", "the organization's release witness (sotto admin witness serve --log-key RELEASE-KEY)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	var err error
	switch args[0] {
	case "keygen":
		if *key == "" {
			err = errors.New("--key is required")
			break
		}
		pub, kerr := publish.NewKey(*key)
		if err = kerr; err == nil {
			fmt.Fprintf(stdout, "release key: %x\n", pub)
		}
	case "publish":
		err = publishAll(stdout, *key, *dir, *dist, *ver, *commit, *minVer, strings.Split(*plats, ","))
	case "witness":
		if *dir == "" || *wurl == "" {
			err = errors.New("--dir and --witness are required")
			break
		}
		err = publish.Witness(ctx, *dir, &witness.Client{URL: *wurl})
		if err == nil {
			fmt.Fprintln(stdout, "the release log's head is co-signed")
		}
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "sotto-release: %v\n", err)
		return 1
	}
	return 0
}

func publishAll(stdout io.Writer, keyFile, dir, dist, ver, commit, minVer string, plats []string) error {
	if keyFile == "" || dir == "" || dist == "" || ver == "" || commit == "" {
		return errors.New("--key, --dir, --dist, --version and --commit are required")
	}
	key, err := publish.LoadKey(keyFile)
	if err != nil {
		return err
	}
	for _, p := range plats {
		folder := filepath.Join(dist, strings.ReplaceAll(p, "/", "_"))
		ents, err := os.ReadDir(folder)
		if err != nil {
			return err
		}
		files := map[string]string{}
		for _, e := range ents {
			if e.Type().IsRegular() {
				files[e.Name()] = filepath.Join(folder, e.Name())
			}
		}
		enc, err := publish.Publish(dir, key, publish.Release{Version: ver, MinVersion: minVer, Commit: commit, Platform: p, Files: files}, time.Now())
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		h := release.Hash(enc)
		fmt.Fprintf(stdout, "%s %s manifest %s\n", ver, p, hex.EncodeToString(h[:]))
	}
	fmt.Fprintln(stdout, "published; now have the witness co-sign the log: sotto-release witness")
	return nil
}
