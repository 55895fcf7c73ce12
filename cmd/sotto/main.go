// Command sotto is the Sotto messenger's command-line client.
//
//	sotto [--home DIR] [--passphrase-file FILE] [--ca FILE] [--pin SHA256] [--insecure] [--receipt-delay D] COMMAND [ARGS]
//
// Commands: enroll, send, listen, chat, contacts, safety-number, verify,
// devices (list, link, approve, remove), history, whoami, lock, wipe; up,
// down, status, unlock and agent for the device's agent (session.go); web
// for the web app (web.go).
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sotto/agent"
	"sotto/client"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: sotto [--home DIR] [--passphrase-file FILE] [--ca FILE] [--pin SHA256] [--insecure] [--receipt-delay D] COMMAND [ARGS]

commands:
  enroll --relay URL --code CODE --user NAME [--device-name NAME]
  send USER TEXT...
  send USER --file PATH [--view-once] [CAPTION...]
  download MSGID | --latest USER [--out PATH | --dir DIR]
      (default DIR: HOME/attachments; --out -: to stdout; view-once: always to stdout, once)
  listen [--json] [--drain] [--count N] [--timeout D] [--auto-answer] [--audio-in F.wav] [--audio-out F.wav] [--relay-only]
  call USER [--audio-in F.wav] [--audio-out F.wav] [--relay-only] [--duration D] [--ring-timeout D] [--mute]
  chat [USER]                     (the terminal chat app; --line USER: line mode)
  history USER [--limit N]
  reply USER MSGID|last TEXT...  (MSGID: from history --json; last: the newest)
  react USER MSGID EMOJI          (EMOJI "": withdraw)
  edit USER MSGID TEXT...
  delete USER MSGID               (for everyone, within 24 hours)
  timer USER DURATION|off         (disappearing messages, e.g. 1h)
  settings [read-receipts on|off] [typing on|off] [sealed-fallback on|off]
                                  (sealed-fallback on: a message the relay refuses
                                  to deliver sealed goes with your name visible)
  search [--json] [--limit N] TEXT...
  contacts [revoke USER | restore USER]   (revoke: USER may no longer send to you sealed)
  safety-number USER [--qr]
  verify USER [--accept]
  devices [list]
  devices link --relay URL [--device-name NAME] [--code-file FILE] [--defer-history]
  devices approve [--no-history] CODE | --code-file FILE   (sends history, contacts, settings unless --no-history)
  devices import-history          (retry a history transfer the link left pending)
  devices remove ID
  devices wipe ID
  whoami
  up [--idle-lock D]              (start this device's agent: unlock once, stay connected)
  down                            (stop it)
  status [--json]                 (is the agent running? its state)
  unlock                          (unlock the agent after an idle lock)
  agent [--idle-lock D]           (run the agent in the foreground; sotto up runs it in the background)
  lock [--wipe-after N] [--duress-file FILE | --no-duress] [--new-passphrase-file FILE]
  wipe --yes
  notices [--json]
  keylog [audit]                  (key transparency: pinned log key and witness, head, alarms)
  group create NAME [USER...] | add GROUP USER... | remove GROUP USER... | send GROUP TEXT... | history GROUP | sync | list | join ID
  update [check|apply] [--from URL|DIR]   (a release the org approved, logged and newer; --version: this build)
  web [--addr 127.0.0.1:0]        (the web app, from this binary, on loopback: prints a one-time link)
  admin init | export | import | notice | wipe | policy | members ...  (sotto admin: details)
`

// env is what every command gets.
type env struct {
	ctx            context.Context
	stdin          io.Reader
	stdout, stderr io.Writer
	home           string
	passFile       string
	verbose        bool
	kdf            store.KDFParams
	// How to reach the relay (--ca, --pin, --insecure), checked when
	// parsed; not yet kept per device.
	rootCAs  *x509.CertPool
	pin      []byte
	insecure bool
	// caFile and pinText are --ca and --pin as given (for sotto up).
	caFile, pinText string
	// receiptDelay is the most receipts wait before they are sent
	// (--receipt-delay; at least a tenth of it).
	receiptDelay time.Duration
}

// errUsage makes run print the usage and exit with status 2.
var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if version.PrintIfAsked("sotto", args, stdout) {
		return 0
	}
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	fs := e.flagSet("sotto")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	args = fs.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmds := map[string]func(*env, []string) error{
		"enroll":        cmdEnroll,
		"send":          cmdSend,
		"listen":        cmdListen,
		"call":          cmdCall,
		"chat":          cmdChat,
		"history":       cmdHistory,
		"contacts":      cmdContacts,
		"safety-number": cmdSafetyNumber,
		"verify":        cmdVerify,
		"devices":       cmdDevices,
		"wipe":          cmdWipe,
		"whoami":        cmdWhoami,
		"lock":          cmdLock,
		"react":         cmdReact,
		"edit":          cmdEdit,
		"delete":        cmdDelete,
		"reply":         cmdReply,
		"timer":         cmdTimer,
		"settings":      cmdSettings,
		"search":        cmdSearch,
		"admin":         cmdAdmin,
		"notices":       cmdNotices,
		"download":      cmdDownload,
		"keylog":        cmdKeylog,
		"group":         cmdGroup,
		"agent":         cmdAgent,
		"up":            cmdUp,
		"down":          cmdDown,
		"status":        cmdStatus,
		"unlock":        cmdUnlock,
		"update":        cmdUpdate, // update.go
		"web":           cmdWeb,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "sotto: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if !longRunning(args) {
		// A one-shot command never hangs on an unresponsive relay.
		var cancel context.CancelFunc
		e.ctx, cancel = context.WithTimeout(ctx, oneShotTimeout)
		defer cancel()
	}
	err := cmd(e, args[1:])
	// A duress unlock answers after destroying the key file; the rest of
	// its wipe runs here, once the answer is out, so that it does not
	// show in how long the unlock took (store.FinishWipe).
	defer func() { _ = store.FinishWipe(e.home) }()
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "sotto: %s\n", errText(err))
		return 1
	}
}

// oneShotTimeout bounds commands that do one thing and exit.
const oneShotTimeout = 2 * time.Minute

// longRunning reports whether the command line runs until stopped (or has
// its own --timeout).
func longRunning(args []string) bool {
	switch args[0] {
	case "listen", "chat", "call", "agent", "web":
		return true
	case "download":
		return true // a transfer may take longer than a one-shot command
	case "send":
		return hasFileFlag(args)
	case "devices":
		return len(args) > 1 && args[1] == "link"
	case "admin":
		return len(args) > 2 && args[1] == "witness" && args[2] == "serve"
	}
	return false
}

// flagSet returns a FlagSet with the global flags, so they may come before
// or after the command name.
func (e *env) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	home := e.home
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = filepath.Join(h, ".sotto")
		}
	}
	fs.StringVar(&e.home, "home", home, "directory of the local store")
	fs.StringVar(&e.passFile, "passphrase-file", e.passFile, "read the device passphrase from `FILE` (else prompt)")
	fs.BoolVar(&e.verbose, "v", e.verbose, "verbose logging to stderr")
	fs.Func("ca", "verify the relay's TLS certificate against the CA certificates in `FILE` (PEM) instead of the system's", func(s string) error {
		e.caFile = s
		b, err := os.ReadFile(s)
		if err != nil {
			return err
		}
		o, err := transport.NewOptions(b, nil, false)
		e.rootCAs = o.RootCAs
		return err
	})
	fs.Func("pin", "require the relay's TLS certificate to carry this public key: `SHA256` of its SubjectPublicKeyInfo, 64 hex digits", func(s string) error {
		p, err := transport.ParsePin(s)
		e.pin, e.pinText = p, s
		return err
	})
	fs.BoolVar(&e.insecure, "insecure", e.insecure, "allow an unencrypted ws:// relay that is not on this machine")
	if e.receiptDelay == 0 {
		e.receiptDelay = client.DefaultReceiptDelayMax
	}
	fs.DurationVar(&e.receiptDelay, "receipt-delay", e.receiptDelay, "send delivery and read receipts after a random delay of up to `D` (at least D/10), batched, so that their timing does not tell the relay who wrote to you")
	return fs
}

// transport is how this run reaches the relay (--ca, --pin, --insecure).
func (e *env) transport() transport.Options {
	return transport.Options{RootCAs: e.rootCAs, Pin: e.pin, Insecure: e.insecure}
}

// parse parses a command's flags; flags may follow positional arguments.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (e *env) logger() *slog.Logger {
	level := slog.LevelWarn
	if e.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

func (e *env) options(onEvent func(client.Event)) *client.Options {
	return &client.Options{Logger: e.logger(), OnEvent: onEvent, KDF: e.kdf, Transport: e.transport(),
		ReceiptDelayMin: e.receiptDelay / 10, ReceiptDelayMax: e.receiptDelay}
}

// open unlocks the local store, for a command that does not go through
// the agent and does not connect (it may run beside an agent, as two
// commands could share a store before there was one).
func (e *env) open(onEvent func(client.Event)) (*client.Client, error) {
	if !store.Exists(e.home) {
		return nil, e.noDevice()
	}
	pass, err := e.passphrase(false)
	if err != nil {
		return nil, err
	}
	defer clear(pass)
	c, err := client.Open(e.ctx, e.home, pass, e.options(onEvent))
	if err != nil {
		return nil, e.unlockError(err)
	}
	if weak := c.PassphraseBelowPolicy(e.ctx, pass); weak != nil {
		fmt.Fprintf(e.stderr, "! %v: your organization asks for a stronger passphrase; change it with sotto lock --new-passphrase-file FILE\n", weak)
	}
	return c, nil
}

// unlockError is what the CLI says when unlocking the store failed.
func (e *env) unlockError(err error) error {
	var ae *store.AttemptsError
	switch {
	case errors.As(err, &ae):
		return fmt.Errorf("wrong passphrase (%d attempts left before this device wipes itself)", ae.Left)
	case errors.Is(err, store.ErrWrongPassphrase):
		return errors.New("wrong passphrase")
	case errors.Is(err, store.ErrWipedAfterFailures):
		return errors.New("too many wrong passphrases: this device's keys and history were wiped")
	case errors.Is(err, store.ErrNoStore):
		// Also what the duress passphrase comes to: the real store was
		// wiped silently and this device must look freshly installed.
		return e.noDevice()
	}
	return err
}

// noDevice is the error of a device where nothing is enrolled: a first
// run, a wiped device, or an unlock with the duress passphrase, which
// must not be told apart.
func (e *env) noDevice() error { return &noDeviceError{home: e.home} }

// noDeviceError is the error of env.noDevice.
type noDeviceError struct{ home string }

func (e *noDeviceError) Error() string {
	return fmt.Sprintf("no enrolled device in %s (run sotto enroll, or sotto devices link)", e.home)
}

// connect opens the store and connects to the relay, for a command that
// found no running agent (each one asks a running agent first). One
// started meanwhile makes it refuse: the device has one relay connection,
// and a second one would end the agent's.
func (e *env) connect(receive bool, onEvent func(client.Event)) (*client.Client, error) {
	if pid, ok := agent.Running(e.home); ok {
		return nil, fmt.Errorf("the agent for %s runs (pid %d) and this command connects by itself: stop the agent first with sotto down", e.home, pid)
	}
	c, err := e.open(onEvent)
	if err != nil {
		return nil, err
	}
	if err := c.Connect(e.ctx, client.ConnectOptions{Receive: receive}); err != nil {
		c.Close()
		return nil, err
	}
	if w, err := c.SubscriptionWarning(e.ctx); err == nil && w != "" {
		fmt.Fprintf(e.stderr, "! %s\n", w)
	}
	return c, nil
}

// kdfFlags adds the Argon2id tuning flags of commands creating a store.
func (e *env) kdfFlags(fs *flag.FlagSet) {
	e.kdf = store.DefaultKDFParams
	fs.Func("argon2-memory", "Argon2id memory in `MiB` for the new store (default 64)", func(s string) error {
		var n uint32
		if _, err := fmt.Sscan(s, &n); err != nil || n == 0 {
			return fmt.Errorf("bad memory %q", s)
		}
		e.kdf.MemoryKiB = n * 1024
		return nil
	})
	fs.Func("argon2-time", "Argon2id passes for the new store (default 3)", func(s string) error {
		var n uint32
		if _, err := fmt.Sscan(s, &n); err != nil || n == 0 {
			return fmt.Errorf("bad time %q", s)
		}
		e.kdf.Time = n
		return nil
	})
}
