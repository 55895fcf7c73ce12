// Command sotto-redteam mounts the red-team suite (package redteam)
// against real relays it starts on loopback, each with its own SQLite
// store, and prints the result as a markdown table: attack, defence,
// result, and what happened with the defence switched off.
//
//	sotto-redteam              run every attack, print the report
//	sotto-redteam -run flood   only the attacks whose name matches
//	sotto-redteam -table       print the table docs/architecture.md carries (no run)
//
// It exits 1 when an attack got through, or got through with its defence
// on, or could not be mounted.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"

	"sotto/redteam"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sotto-redteam", flag.ContinueOnError)
	fs.SetOutput(stderr)
	table := fs.Bool("table", false, "print the registry's table for docs/architecture.md and exit")
	only := fs.String("run", "", "run only the attacks whose name matches this regular expression")
	dir := fs.String("dir", "", "scratch directory for the relays and devices (default: the system's temporary directory)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	attacks := redteam.Registry()
	if *table {
		fmt.Fprint(stdout, redteam.Table(attacks))
		return 0
	}
	re, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintf(stderr, "sotto-redteam: -run: %v\n", err)
		return 2
	}
	var results []redteam.Result
	failed := 0
	for _, a := range attacks {
		if !re.MatchString(a.Name) {
			continue
		}
		fmt.Fprintf(stderr, "sotto-redteam: %s...\n", a.Name)
		res := redteam.RunAttack(ctx, *dir, a)
		if !res.Held() {
			failed++
		}
		results = append(results, res)
	}
	fmt.Fprint(stdout, redteam.Report(results))
	if failed > 0 {
		fmt.Fprintf(stderr, "sotto-redteam: %d of %d attacks not held\n", failed, len(results))
		return 1
	}
	return 0
}
