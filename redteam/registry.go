package redteam

import (
	"context"
	"fmt"
	"strings"
)

// Attack is one attack of the suite.
type Attack struct {
	Name    string // short, unique: the subtest's name
	Threat  string // who attacks and what they try
	Defence string // what stops it, in the code
	// Switch names the real configuration that turns the defence off;
	// Run(ctx, env, false) mounts the attack with it off, and the attack
	// must then get through. Empty: the defence has no switch, and
	// Verified says how it was checked with the defence disabled.
	Switch   string
	Verified string
	// Run mounts the attack against a relay it starts in env, with the
	// defence on or (where Switch is set) off. It reports what happened;
	// an error means the attack could not be mounted.
	Run func(ctx context.Context, env *Env, defence bool) (Outcome, error)
}

// Outcome is what an attack achieved.
type Outcome struct {
	Stopped bool   // the defence held
	Detail  string // what was seen
}

func stopped(format string, args ...any) Outcome {
	return Outcome{Stopped: true, Detail: fmt.Sprintf(format, args...)}
}

func through(format string, args ...any) Outcome {
	return Outcome{Detail: fmt.Sprintf(format, args...)}
}

// Registry returns every attack, in the order of the table.
func Registry() []Attack {
	var all []Attack
	for _, group := range [][]Attack{trustAttacks(), keyAttacks(), metadataAttacks(), callAttacks(), groupAttacks(), outsiderAttacks(), localAttacks()} {
		all = append(all, group...)
	}
	return all
}

// Result is one attack's outcome with the defence on and, where it has a
// switch, off.
type Result struct {
	Attack Attack
	On     Outcome
	Off    *Outcome // nil: no switch
	Err    error
}

// Held reports whether the defence held, and (with a switch) the attack
// got through without it.
func (r Result) Held() bool {
	return r.Err == nil && r.On.Stopped && (r.Off == nil || !r.Off.Stopped)
}

// RunAttack mounts a in fresh Envs under dir: with the defence on, then
// with it off where a has a switch.
func RunAttack(ctx context.Context, dir string, a Attack) Result {
	res := Result{Attack: a}
	res.On, res.Err = runOnce(ctx, dir, a, true)
	if res.Err != nil || a.Switch == "" {
		return res
	}
	off, err := runOnce(ctx, dir, a, false)
	res.Off, res.Err = &off, err
	return res
}

func runOnce(ctx context.Context, dir string, a Attack, defence bool) (Outcome, error) {
	env, err := NewEnv(dir)
	if err != nil {
		return Outcome{}, err
	}
	defer env.Close()
	return a.Run(ctx, env, defence)
}

// Table is the markdown table of the registry (attack → defence → how the
// defence was checked off), the one docs/architecture.md carries. It
// depends on the registry only, not on a run, so that the doc can be
// checked against the code.
func Table(attacks []Attack) string {
	var b strings.Builder
	b.WriteString("| attack | threat | defence | switched off |\n|---|---|---|---|\n")
	for _, a := range attacks {
		off := "switch: " + a.Switch + "; the attack then gets through (checked on every run)"
		if a.Switch == "" {
			off = a.Verified
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", a.Name, cell(a.Threat), cell(a.Defence), cell(off))
	}
	return b.String()
}

// Report is the markdown table of a run: each attack, what the defence
// did, and what happened with it off.
func Report(results []Result) string {
	var b strings.Builder
	b.WriteString("| attack | defence | result | switched off |\n|---|---|---|---|\n")
	for _, r := range results {
		result := "**HELD**: " + r.On.Detail
		if !r.On.Stopped {
			result = "**FAILED**: " + r.On.Detail
		}
		if r.Err != nil {
			result = "**ERROR**: " + r.Err.Error()
		}
		off := r.Attack.Verified
		if r.Off != nil {
			off = "attack got through: " + r.Off.Detail
			if r.Off.Stopped {
				off = "**still stopped** (the switch does not control the defence): " + r.Off.Detail
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.Attack.Name, cell(r.Attack.Defence), cell(result), cell(off))
	}
	return b.String()
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}
