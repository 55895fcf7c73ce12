package main

import (
	"io"
	"os"
	"strings"

	"golang.org/x/term"
	"rsc.io/qr"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writeQR draws data as a QR code with Unicode half blocks, two modules per
// character cell, with the 4-module quiet zone the standard asks for.
func writeQR(w io.Writer, data string) error {
	code, err := qr.Encode(data, qr.M)
	if err != nil {
		return err
	}
	const quiet = 4
	n := code.Size
	black := func(x, y int) bool {
		return x >= 0 && y >= 0 && x < n && y < n && code.Black(x, y)
	}
	var b strings.Builder
	for y := -quiet; y < n+quiet; y += 2 {
		for x := -quiet; x < n+quiet; x++ {
			top, bottom := black(x, y), black(x, y+1)
			// Light modules are drawn as blocks, so the code reads as
			// dark-on-light on a dark terminal background.
			switch {
			case !top && !bottom:
				b.WriteString("█")
			case !top:
				b.WriteString("▀")
			case !bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString("\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}
