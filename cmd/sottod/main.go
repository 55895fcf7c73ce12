// Command sottod is the Sotto relay daemon.
//
//	sottod serve [-data dir | -config file] [-listen addr] [-tls-cert f -tls-key f | -acme-domain d] [-mailbox-ttl d] [-dedupe-ttl d]
//	sottod admin bootstrap ...
//	sottod admin invitations list|revoke ...
//	sottod admin devices list|revoke ...
//	sottod admin accounts list|revoke ...
//	sottod admin usage
//
// Admin commands open the data directory directly; they may run while the
// relay serves (SQLite serializes the two processes' writes), and the
// relay notices revocations within a second.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sotto/internal/version"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  sottod serve [flags]             run the relay (sottod serve -h for flags)
  sottod admin bootstrap           (once: the first admin's code)
  sottod admin invitations list|revoke
  sottod admin devices list|revoke
  sottod admin accounts list|revoke
  sottod admin usage
  sottod --version                 (the version and source commit of this build)
`

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if version.PrintIfAsked("sottod", args, stdout) {
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "serve":
		return serveMain(ctx, args[1:], stdout, stderr)
	case "admin":
		return adminMain(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "sottod: unknown command %q\n%s", args[0], usage)
		return 2
	}
}
