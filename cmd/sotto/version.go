package main

import (
	"fmt"
	"io"

	"sotto/internal/version"
)

// printVersion answers `sotto --version` (or `sotto version`): it reports
// whether args ask for the version, and prints it if so.
func printVersion(args []string, stdout io.Writer) bool {
	if len(args) != 1 {
		return false
	}
	switch args[0] {
	case "--version", "-version", "version":
		fmt.Fprintf(stdout, "sotto %s\n", version.Current())
		return true
	}
	return false
}
