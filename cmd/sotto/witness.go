package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"sotto/transparency"
	"sotto/witness"
)

// `sotto admin witness`: the org's key log witness (package witness). The
// organization runs it away from the relay, on a machine the relay's
// operator does not control; the relay submits its log heads to it
// (sottod serve -witness URL) and clients check its cosignature.

const witnessUsage = `usage:
  sotto admin witness init --dir DIR
  sotto admin witness serve --dir DIR --listen ADDR --log-key HEX [--url-file FILE]
  sotto admin witness status --url URL [--key HEX] [--log-key HEX] [--min-size N]
  sotto admin witness use HEX   (on an admin's device: invitations from now on carry this witness key)
`

func adminWitness(e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, witnessUsage)
		return errAdminUsage
	}
	switch args[0] {
	case "init":
		return witnessInit(e, args[1:])
	case "serve":
		return witnessServe(e, args[1:])
	case "status":
		return witnessStatus(e, args[1:])
	case "use":
		return witnessUse(e, args[1:])
	}
	fmt.Fprint(e.stderr, witnessUsage)
	return errAdminUsage
}

// witnessInit creates the witness key (mode 0600) and prints its public
// key: the key the org's invitations carry to every device.
func witnessInit(e *env, args []string) error {
	fs := e.flagSet("admin witness init")
	dir := fs.String("dir", "", "the witness's `DIR`ectory (key and state)")
	if pos, err := parse(fs, args); err != nil || len(pos) > 0 || *dir == "" {
		fmt.Fprint(e.stderr, witnessUsage)
		return errAdminUsage
	}
	pub, err := witness.InitKey(*dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "witness public key: %x\n", pub)
	fmt.Fprintln(e.stdout, "keep the directory on a machine the relay's operator does not control; give the public key to the org's devices")
	return nil
}

func parseKey(flagName, s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("admin witness: %s: want %d hex-encoded bytes", flagName, ed25519.PublicKeySize)
	}
	return b, nil
}

// witnessServe serves the witness until the command is interrupted.
func witnessServe(e *env, args []string) error {
	fs := e.flagSet("admin witness serve")
	dir := fs.String("dir", "", "the witness's `DIR`ectory (made by init)")
	listen := fs.String("listen", "127.0.0.1:7070", "`ADDR`ess to listen on")
	logKeyHex := fs.String("log-key", "", "the relay's key log public key, `HEX` (what sottod admin keylog show prints)")
	urlFile := fs.String("url-file", "", "also write the URL to `FILE` once listening")
	if pos, err := parse(fs, args); err != nil || len(pos) > 0 || *dir == "" {
		fmt.Fprint(e.stderr, witnessUsage)
		return errAdminUsage
	}
	logKey, err := parseKey("--log-key", *logKeyHex)
	if err != nil {
		return err
	}
	key, err := witness.LoadKey(*dir)
	if err != nil {
		return err
	}
	w, err := witness.New(witness.Config{Dir: *dir, Key: key, LogKey: logKey, Logger: e.logger()})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("admin witness: %w", err)
	}
	url := "http://" + ln.Addr().String()
	srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	fmt.Fprintf(e.stdout, "witness public key: %x\n", w.PublicKey())
	fmt.Fprintf(e.stdout, "witness: listening on %s (run the relay with: sottod serve -witness %s)\n", url, url)
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(url+"\n"), 0o600); err != nil {
			ln.Close()
			return fmt.Errorf("admin witness: %w", err)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin witness: %w", err)
	case <-e.ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	fmt.Fprintln(e.stdout, "witness: stopped")
	return err
}

// witnessStatus prints the witness's newest co-signed head, checking it
// when the keys are given; with --min-size it waits until the witness
// co-signed at least that size.
func witnessStatus(e *env, args []string) error {
	fs := e.flagSet("admin witness status")
	url := fs.String("url", "", "the witness's `URL`")
	keyHex := fs.String("key", "", "the witness's public key, `HEX`, to check the cosignature")
	logKeyHex := fs.String("log-key", "", "the relay's key log public key, `HEX`, to check the head")
	minSize := fs.Uint64("min-size", 0, "wait until the witness co-signed at least `N` leaves")
	if pos, err := parse(fs, args); err != nil || len(pos) > 0 || *url == "" {
		fmt.Fprint(e.stderr, witnessUsage)
		return errAdminUsage
	}
	var wk, lk ed25519.PublicKey
	var err error
	if *keyHex != "" {
		if wk, err = parseKey("--key", *keyHex); err != nil {
			return err
		}
	}
	if *logKeyHex != "" {
		if lk, err = parseKey("--log-key", *logKeyHex); err != nil {
			return err
		}
	}
	c := &witness.Client{URL: *url, HTTP: &http.Client{Timeout: 10 * time.Second}}
	for {
		hb, cb, err := c.Checkpoint(e.ctx)
		if err != nil {
			return err
		}
		var head transparency.SignedHead
		if hb != nil {
			if head, err = transparency.DecodeHead(hb); err != nil {
				return fmt.Errorf("admin witness: %w", err)
			}
		}
		if hb != nil && head.Size >= *minSize {
			return printWitnessStatus(e, head, cb, wk, lk)
		}
		if *minSize == 0 {
			fmt.Fprintln(e.stdout, "witness: nothing co-signed yet")
			return nil
		}
		select {
		case <-e.ctx.Done():
			return fmt.Errorf("admin witness: size %d not co-signed yet: %w", *minSize, e.ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func printWitnessStatus(e *env, head transparency.SignedHead, cosig []byte, wk, lk ed25519.PublicKey) error {
	c, err := transparency.DecodeCosignature(cosig)
	if err != nil {
		return fmt.Errorf("admin witness: %w", err)
	}
	fmt.Fprintf(e.stdout, "witness: co-signed size %d, root %x, at %s\n", head.Size, head.Root,
		time.Unix(int64(c.Timestamp), 0).UTC().Format(time.RFC3339))
	if lk != nil {
		if err := head.Verify(lk); err != nil {
			return fmt.Errorf("admin witness: the head is not signed by the log key: %w", err)
		}
		fmt.Fprintln(e.stdout, "head: signed by the log key")
	}
	if wk != nil && lk != nil {
		if err := c.Verify(wk, lk, head.Size, head.Root); err != nil {
			return fmt.Errorf("admin witness: %w", err)
		}
		fmt.Fprintln(e.stdout, "cosignature: verified")
	}
	return nil
}

// witnessUse pins the witness key on an admin's device, so that the
// invitations it mints carry it.
func witnessUse(e *env, args []string) error {
	fs := e.flagSet("admin witness use")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	key, err := parseKey("witness key", pos[0])
	if err != nil {
		return err
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetWitnessKey(e.ctx, key); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "witness key pinned; invitations from this device now carry it\n")
	return nil
}
