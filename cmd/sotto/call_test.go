package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"sotto/client/call"
)

// TestCallScripts runs the call scenarios in testdata/calls against a real
// relay with real sotto processes.
func TestCallScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end scripts start a relay")
	}
	bin := buildSottod(t)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/calls",
		RequireExplicitExec: true,
		Condition: func(cond string) (bool, error) {
			if cond == "opus" {
				return call.OpusAvailable(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(e *testscript.Env) error {
			// An agent a failed script left running (sotto up) is
			// stopped with it.
			e.Defer(func() { stopAgents(e.WorkDir) })
			return startRelay(e, bin)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"invite":    cmdInvite,
			"waitfile":  cmdWaitFile,
			"tonewav":   cmdToneWAV,
			"checktone": cmdCheckTone,
		},
	})
}

// tonewav FILE RATE FREQ...: a 1.5 s WAV of the sum of the tones.
func cmdToneWAV(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: tonewav FILE RATE FREQ...")
	}
	rate, err := strconv.Atoi(args[1])
	ts.Check(err)
	var freqs []float64
	for _, a := range args[2:] {
		f, err := strconv.ParseFloat(a, 64)
		ts.Check(err)
		freqs = append(freqs, f)
	}
	pcm := make([]int16, rate*3/2)
	for i := range pcm {
		v := 0.0
		for _, f := range freqs {
			v += 6000 * math.Sin(2*math.Pi*f*float64(i)/float64(rate))
		}
		pcm[i] = int16(v)
	}
	var buf bytes.Buffer
	ts.Check(call.WriteWAV(&buf, pcm, uint32(rate)))
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), buf.Bytes(), 0o600))
}

// checktone FILE WANT... -- OTHER...: every wanted tone is 20 dB above
// every other one in the recording.
func cmdCheckTone(ts *testscript.TestScript, neg bool, args []string) {
	i := slices.Index(args, "--")
	if len(args) < 2 || i < 2 {
		ts.Fatalf("usage: checktone FILE WANT... -- OTHER...")
	}
	pcm, err := call.ReadWAVFile(ts.MkAbs(args[0]))
	ts.Check(err)
	if len(pcm) < 8000 {
		ts.Fatalf("%s: only %d samples", args[0], len(pcm))
	}
	power := func(a string) float64 {
		f, err := strconv.ParseFloat(a, 64)
		ts.Check(err)
		w := 2 * math.Pi * f / 8000
		coef := 2 * math.Cos(w)
		var s1, s2 float64
		for _, v := range pcm {
			s := float64(v) + coef*s1 - s2
			s2, s1 = s1, s
		}
		return (s1*s1 + s2*s2 - coef*s1*s2) / float64(len(pcm)*len(pcm))
	}
	noise := power("3100")
	for _, a := range args[i+1:] {
		noise = max(noise, power(a))
	}
	for _, a := range args[1:i] {
		if p := power(a); p < 100*noise {
			ts.Fatalf("%s: %s Hz at %.3g, not 20 dB above %.3g", args[0], a, p, noise)
		}
	}
}
