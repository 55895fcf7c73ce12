package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sotto/internal/safetext"
	"sotto/orgcert"
	"sotto/relay"
	"sotto/relay/sqlitestore"
	"sotto/wire"
)

// adminCmd is one `sottod admin` subcommand.
type adminCmd struct {
	fs     *flag.FlagSet
	data   *string
	config *string
	json   *bool
	store  adminStore
	out    io.Writer
	be     *BackendConfig // -store, -postgres-url (backends.go)
}

func newAdminCmd(name string, stderr io.Writer) *adminCmd {
	fs := flag.NewFlagSet("sottod admin "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &adminCmd{
		fs:     fs,
		data:   fs.String("data", "", "data `directory` of the relay (or `data` in the config file)"),
		config: fs.String("config", "", "the relay's config `file` (default: the first of "+strings.Join(defaultConfigFiles(), ", ")+" that exists): its data and store settings"),
		json:   fs.Bool("json", false, "print JSON"),
		be:     adminStoreFlags(fs),
	}
}

func (a *adminCmd) emit(v any, text func(w io.Writer)) error {
	if *a.json {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	text(tw)
	return tw.Flush()
}

const adminUsage = `usage:
  sottod admin bootstrap [-data dir] [-relay URL] [-tls-cert FILE] [-days n] [--json]
        (once, before any organization exists: the one-time code with which the
         first admin's device creates the organization: sotto admin init --bootstrap CODE)
  sottod admin invitations list [-data dir] [--json]   (seats of the org's invitations)
  sottod admin invitations revoke [-data dir] [--json] ID
  sottod admin accounts list [-data dir] [--json]
  sottod admin accounts revoke [-data dir] [--json] USERNAME
  sottod admin devices list [-data dir] [-user USERNAME] [--json]
  sottod admin devices revoke [-data dir] [--json] USERNAME DEVICE-ID
  sottod admin usage [-data dir] [--json]
  sottod admin keylog show [-data dir] [--json]   (the key transparency log key to publish, size, root)
  (with a PostgreSQL relay, every command takes -store postgres -postgres-url URL [-postgres-schema S] instead of -data)
  (without -data: the data line of the relay's config file, -config FILE or the default ones; see sottod serve -h)
` + orgAdminUsage

func adminMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	name := args[0]
	rest := args[1:]
	if name != "usage" && name != "bootstrap" {
		if len(args) < 2 {
			fmt.Fprint(stderr, adminUsage)
			return 2
		}
		name, rest = args[0]+" "+args[1], args[2:]
	}
	cmd := newAdminCmd(name, stderr)
	cmd.out = stdout
	var (
		days  = new(int)
		note  = new(string)
		user  = new(string)
		nargs = 0
		fn    func(ctx context.Context, args []string) error
	)
	switch name {
	case "bootstrap":
		cmd.fs.IntVar(days, "days", 3650, "the first admin account's subscription, in days (the code itself stops working once the organization exists)")
		cmd.fs.StringVar(note, "relay", "ws://127.0.0.1:8080", "the relay's URL as the admin's device reaches it")
		cmd.fs.StringVar(user, "tls-cert", "", "the relay's TLS certificate (PEM): the code pins its public key")
		fn = func(ctx context.Context, _ []string) error { return cmd.bootstrap(ctx, *note, *user, *days) }
	case "invitations list":
		fn = func(ctx context.Context, _ []string) error { return cmd.codesList(ctx) }
	case "invitations revoke":
		nargs = 1
		fn = func(ctx context.Context, a []string) error { return cmd.codesRevoke(ctx, a[0]) }
	case "accounts list":
		fn = func(ctx context.Context, _ []string) error { return cmd.accountsList(ctx) }
	case "accounts revoke":
		nargs = 1
		fn = func(ctx context.Context, a []string) error { return cmd.revoke(ctx, a[0], "0") }
	case "devices list":
		cmd.fs.StringVar(user, "user", "", "only this account")
		fn = func(ctx context.Context, _ []string) error { return cmd.devicesList(ctx, *user) }
	case "devices revoke":
		nargs = 2
		fn = func(ctx context.Context, a []string) error { return cmd.revoke(ctx, a[0], a[1]) }
	case "usage":
		fn = func(ctx context.Context, _ []string) error { return cmd.usage(ctx) }
	case "org show":
		fn = func(ctx context.Context, _ []string) error { return cmd.orgShow(ctx) }
	case "keylog show":
		fn = func(ctx context.Context, _ []string) error { return cmd.keylogShow(ctx) }
	case "accounts extend":
		nargs = 1
		cmd.fs.IntVar(days, "days", 365, "extend the subscription by this many days")
		fn = func(ctx context.Context, a []string) error { return cmd.accountsExtend(ctx, a[0], *days) }
	case "accounts suspend":
		nargs = 1
		fn = func(ctx context.Context, a []string) error { return cmd.accountsSuspend(ctx, a[0]) }
	default:
		fmt.Fprintf(stderr, "sottod admin: unknown command %q\n%s", name, adminUsage)
		return 2
	}
	// Flags may come before or after the positional arguments.
	var positional []string
	for {
		if err := cmd.fs.Parse(rest); err != nil {
			return 2
		}
		if cmd.fs.NArg() == 0 {
			break
		}
		positional = append(positional, cmd.fs.Arg(0))
		rest = cmd.fs.Args()[1:]
	}
	if len(positional) != nargs {
		fmt.Fprintf(stderr, "sottod admin %s: want %d argument(s), got %d\n%s", name, nargs, len(positional), adminUsage)
		return 2
	}
	if name == "accounts extend" && *days < 1 {
		fmt.Fprintln(stderr, "sottod admin accounts extend: -days must be at least 1")
		return 2
	}
	if name == "bootstrap" && *days < 1 {
		fmt.Fprintln(stderr, "sottod admin bootstrap: -days must be at least 1")
		return 2
	}
	dataDir, err := cmd.dataDir(name == "bootstrap")
	if err != nil {
		fmt.Fprintf(stderr, "sottod admin: %v\n", err)
		return 2
	}
	store, err := openAdminStore(ctx, dataDir, *cmd.be)
	if err != nil {
		fmt.Fprintf(stderr, "sottod admin: %v\n", err)
		return 1
	}
	defer store.Close()
	cmd.store = store
	if err := fn(ctx, positional); err != nil {
		fmt.Fprintf(stderr, "sottod admin %s: %v\n", name, err)
		return 1
	}
	return 0
}

// dataDir applies the config file's data and store settings the command
// line did not give, and returns the data directory: "" for a PostgreSQL
// store, else one that holds the relay's database. Only bootstrap, which
// may come before the relay's first start, may create the database (in the
// directory it was given); the other commands refuse a directory without
// one, so that a mistyped -data is an error and not an empty listing.
func (a *adminCmd) dataDir(mayCreate bool) (string, error) {
	cf, err := loadConfig(*a.config)
	if err == nil && cf != nil {
		err = cf.apply(a.fs, "data", "store", "postgres-url", "postgres-schema")
	}
	if err != nil {
		return "", err
	}
	if a.be.Store == "postgres" {
		return "", nil
	}
	dir, err := absData(*a.data)
	if err != nil {
		return "", err
	}
	if dir == "" {
		return "", errNoDataDir()
	}
	if _, err := os.Stat(filepath.Join(dir, sqlitestore.FileName)); err != nil && !mayCreate {
		return "", fmt.Errorf("no relay database in %s (%s is made by sottod serve on its first start): is the data directory right?", dir, sqlitestore.FileName)
	}
	return dir, nil
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") }

type codeJSON struct {
	ID      string    `json:"id"`
	Code    string    `json:"code,omitempty"`
	Seats   int       `json:"seats"`
	Used    int       `json:"used"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Revoked bool      `json:"revoked"`
	Note    string    `json:"note,omitempty"`
}

func (a *adminCmd) codesList(ctx context.Context) error {
	codes, err := a.store.Codes(ctx)
	if err != nil {
		return err
	}
	out := make([]codeJSON, 0, len(codes))
	for _, c := range codes {
		out = append(out, codeJSON{ID: c.ID, Seats: c.Seats, Used: c.Used, Created: c.Created, Expires: c.Expires, Revoked: c.Revoked, Note: c.Note})
	}
	return a.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tSEATS\tUSED\tCREATED\tEXPIRES\tSTATUS\tNOTE")
		for _, c := range out {
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", c.ID, c.Seats, c.Used, day(c.Created), day(c.Expires), status(c.Revoked, c.Expires), c.Note)
		}
	})
}

func status(revoked bool, expires time.Time) string {
	switch {
	case revoked:
		return "revoked"
	case !time.Now().Before(expires):
		return "expired"
	}
	return "active"
}

func (a *adminCmd) codesRevoke(ctx context.Context, id string) error {
	if err := a.store.RevokeCode(ctx, id); err != nil {
		return err
	}
	return a.emit(map[string]any{"id": id, "revoked": true}, func(w io.Writer) { fmt.Fprintf(w, "revoked invitation %s\n", id) })
}

type accountJSON struct {
	Username string    `json:"username"`
	ID       string    `json:"id"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
	Revoked  bool      `json:"revoked"`
	Devices  int       `json:"devices"`
}

func (a *adminCmd) accountsList(ctx context.Context) error {
	accts, err := a.store.Accounts(ctx)
	if err != nil {
		return err
	}
	out := make([]accountJSON, 0, len(accts))
	for _, ac := range accts {
		devs, err := a.store.Devices(ctx, ac.ID, false)
		if err != nil {
			return err
		}
		out = append(out, accountJSON{Username: ac.Username, ID: ac.ID.String(), Created: ac.Created, Expires: ac.Expires, Revoked: ac.Revoked, Devices: len(devs)})
	}
	return a.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, "USERNAME\tDEVICES\tCREATED\tEXPIRES\tSTATUS")
		for _, ac := range out {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\n", ac.Username, ac.Devices, day(ac.Created), day(ac.Expires), status(ac.Revoked, ac.Expires))
		}
	})
}

type deviceJSON struct {
	Username       string    `json:"username"`
	Device         uint32    `json:"device"`
	Name           string    `json:"name"`
	RegistrationID uint32    `json:"registration_id"`
	Created        time.Time `json:"created"`
	LastSeen       time.Time `json:"last_seen"`
	Revoked        bool      `json:"revoked"`
	// Organization is the fingerprint of the org key the account's
	// identity certificate chains to ("" when it does not).
	Organization string `json:"organization"`
	Certified    bool   `json:"certified"`
}

// certification says which organization certified acct's identity key
// (its fingerprint), checked here against the registered org key.
func (a *adminCmd) certification(ctx context.Context, acct relay.Account) (string, bool) {
	k, err := a.store.OrgKey(ctx)
	if err != nil {
		return "", false
	}
	cert, err := a.store.OrgDocument(ctx, wire.OrgDocumentKind_RELAY_IDENTITY_CERTIFICATE, acct.Username)
	if err != nil {
		return "", false
	}
	if _, err := orgcert.Verify(k, cert, acct.Username, acct.IdentityKey); err != nil {
		return "", false
	}
	return relay.OrgFingerprint(k), true
}

func (a *adminCmd) devicesList(ctx context.Context, user string) error {
	var accts []relay.Account
	if user != "" {
		ac, err := a.account(ctx, user)
		if err != nil {
			return err
		}
		accts = []relay.Account{ac}
	} else {
		var err error
		if accts, err = a.store.Accounts(ctx); err != nil {
			return err
		}
	}
	out := []deviceJSON{}
	for _, ac := range accts {
		devs, err := a.store.Devices(ctx, ac.ID, true)
		if err != nil {
			return err
		}
		fp, ok := a.certification(ctx, ac)
		for _, d := range devs {
			// A device's name is whatever its client sent: neutralized for
			// the operator's terminal (and for a --json consumer).
			out = append(out, deviceJSON{Username: safetext.Name(ac.Username), Device: d.Addr.Device, Name: safetext.Name(d.Name), RegistrationID: d.RegistrationID,
				Created: d.Created, LastSeen: d.LastSeen, Revoked: d.Revoked, Organization: fp, Certified: ok})
		}
	}
	return a.emit(out, func(w io.Writer) {
		fmt.Fprintln(w, "USERNAME\tDEVICE\tNAME\tCREATED\tLAST SEEN\tSTATUS\tORGANIZATION")
		for _, d := range out {
			st := "active"
			if d.Revoked {
				st = "revoked"
			}
			org := "NOT CERTIFIED"
			if d.Certified {
				org = d.Organization
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", d.Username, d.Device, d.Name, day(d.Created), day(d.LastSeen), st, org)
		}
	})
}

func (a *adminCmd) account(ctx context.Context, user string) (relay.Account, error) {
	u, err := relay.NormalizeUsername(user)
	if err != nil {
		return relay.Account{}, err
	}
	ac, err := a.store.AccountByName(ctx, u)
	if errors.Is(err, relay.ErrNotFound) {
		return ac, fmt.Errorf("no account %q", u)
	}
	return ac, err
}

// revoke revokes a device, or the whole account when device is "0".
func (a *adminCmd) revoke(ctx context.Context, user, device string) error {
	ac, err := a.account(ctx, user)
	if err != nil {
		return err
	}
	id, err := strconv.ParseUint(device, 10, 32)
	if err != nil {
		return fmt.Errorf("bad device id %q", device)
	}
	if err := a.store.Revoke(ctx, relay.DeviceAddr{Account: ac.ID, Device: uint32(id)}, time.Now()); err != nil {
		return err
	}
	what := fmt.Sprintf("device %d of %s", id, ac.Username)
	if id == 0 {
		what = "account " + ac.Username
	}
	return a.emit(map[string]any{"username": ac.Username, "device": id, "revoked": true}, func(w io.Writer) {
		fmt.Fprintf(w, "revoked %s (a running relay closes its connections within a second)\n", what)
	})
}

func (a *adminCmd) usage(ctx context.Context) error {
	u, err := a.store.Usage(ctx)
	if err != nil {
		return err
	}
	return a.emit(map[string]any{
		"accounts": u.Accounts, "active_accounts": u.ActiveAccounts, "devices": u.Devices, "active_devices": u.ActiveDevices,
		"codes": u.Codes, "seats_total": u.SeatsTotal, "seats_used": u.SeatsUsed,
		"queued_envelopes": u.QueuedEnvelopes, "queued_bytes": u.QueuedBytes,
	}, func(w io.Writer) {
		fmt.Fprintf(w, "accounts:\t%d (%d active)\n", u.Accounts, u.ActiveAccounts)
		fmt.Fprintf(w, "devices:\t%d (%d active)\n", u.Devices, u.ActiveDevices)
		fmt.Fprintf(w, "seats:\t%d of %d used (%d codes)\n", u.SeatsUsed, u.SeatsTotal, u.Codes)
		fmt.Fprintf(w, "queued:\t%d envelopes, %d bytes\n", u.QueuedEnvelopes, u.QueuedBytes)
	})
}
