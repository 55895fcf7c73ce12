package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"sotto/agent/api"
	"sotto/client"
	"sotto/client/org"
	"sotto/client/store"
	"sotto/cmd/sotto/internal/tui"
	"sotto/internal/safetext"
	"sotto/release"
)

// `sotto admin`: the organization key's side. The org private key lives
// only in admins' encrypted stores; these commands sign with it and the
// relay carries what they sign.

const adminUsage = `usage:
  sotto admin init --bootstrap CODE --user NAME --org NAME [--relay-ca FILE] [--json]   (the organization's first admin device)
  sotto admin invite [--days N] [--relay URL] [--relay-ca FILE] [--relay-pin SHA256] [--out FILE] [--json] USER
  sotto admin export --out FILE --export-passphrase-file FILE
  sotto admin import --in FILE --export-passphrase-file FILE
  sotto admin notice [--wait D] [--json] TEXT...
  sotto admin wipe [--valid D] [--wait D] [--json] USER DEVICE-ID
  sotto admin policy set [--failed-unlocks N] [--idle-lock D] [--disappearing-min D] [--disappearing-max D] [--witness-bound D] [--min-passphrase-bits N] [--min-version V]
                         [--no-attachments] [--no-calls] [--version N] [--json]
  sotto admin policy show [--json]
  sotto admin member-access [--json]   (a new org-wide key for sealed first messages; again when a member leaves)
  sotto admin delivery [--limit N] [--json]   (how many devices applied what this device published)
  sotto admin members certify [--valid D] [--json] USER
  sotto admin members list [--json]
  sotto admin witness init | serve | status ...   (the org's key log witness: sotto admin witness)
  sotto admin release approve --version V --witness-key HEX ...   (let devices install a release: sotto admin release)
  sotto admin devices [--json]   (the release each device reports it runs: in the log? approved?)
`

var errAdminUsage = errors.New("admin: unknown subcommand (usage above)")

func cmdAdmin(e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, adminUsage)
		return errAdminUsage
	}
	sub, rest := args[0], args[1:]
	if (sub == "policy" || sub == "members") && len(rest) > 0 {
		sub, rest = sub+" "+rest[0], rest[1:]
	}
	fns := map[string]func(*env, []string) error{
		"init": adminInit, "invite": adminInvite, "delivery": adminDelivery, "export": adminExport, "import": adminImport, "notice": adminNotice, "wipe": adminWipe, "member-access": adminMemberAccess,
		"policy set": adminPolicySet, "policy show": adminPolicyShow,
		"members certify": adminCertify, "members list": adminMembers,
		"witness": adminWitness,
		"release": adminRelease, "devices": adminDevices, // update.go
	}
	fn, ok := fns[sub]
	if !ok {
		fmt.Fprint(e.stderr, adminUsage)
		return errAdminUsage
	}
	return fn(e, rest)
}

// emit prints v as JSON with --json, else the text.
func emit(e *env, asJSON bool, v any, text string) error {
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	fmt.Fprint(e.stdout, text)
	return nil
}

func adminInit(e *env, args []string) error {
	fs := e.flagSet("admin init")
	asJSON := fs.Bool("json", false, "print JSON")
	code := fs.String("bootstrap", "", "the one-time `CODE` printed by `sottod admin bootstrap` on the relay's host (text, or @FILE)")
	user := fs.String("user", "", "your user `NAME`")
	orgName := fs.String("org", "", "the organization's `NAME`, shown to everyone you invite")
	relayCA := fs.String("relay-ca", "", "the CA certificate (PEM `FILE`) of the relay's TLS certificate, where it is not publicly trusted: kept, and handed on in invitations")
	name := fs.String("device-name", "", deviceNameUsage)
	e.kdfFlags(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"--bootstrap", *code}, {"--user", *user}, {"--org", *orgName}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("admin init: missing %s (the order: sottod admin bootstrap on the relay's host, then this, then sotto admin invite)", strings.Join(missing, ", "))
	}
	text, err := readArg(*code)
	if err != nil {
		return fmt.Errorf("admin init: %w", err)
	}
	bc, err := client.ParseBootstrap(text)
	if err != nil {
		return fmt.Errorf("admin init: %w", err)
	}
	if store.Exists(e.home) {
		return fmt.Errorf("admin init: %s already holds an enrolled device", e.home)
	}
	pass, err := e.passphrase(true)
	if err != nil {
		return err
	}
	defer clear(pass)
	ca, err := readOptional(*relayCA)
	if err != nil {
		return fmt.Errorf("admin init: %w", err)
	}
	c, err := client.Bootstrap(e.ctx, client.BootstrapParams{Dir: e.home, Passphrase: pass, Code: bc, Username: *user,
		OrgName: *orgName, DeviceName: *name, RelayCA: ca}, e.options(nil))
	if err != nil {
		return err
	}
	defer c.Close()
	pub, err := c.OrgPublicKey(e.ctx)
	if err != nil {
		return err
	}
	pk, fp := hex.EncodeToString(pub), org.Fingerprint(pub)
	return emit(e, *asJSON, map[string]any{"public_key": pk, "fingerprint": fp, "user": c.Username(), "device": c.DeviceID()},
		fmt.Sprintf("organization %s created; its key is kept in this device's encrypted store\n"+
			"fingerprint:\t%s\nenrolled %s, device %d\n"+
			"back the key up (sotto admin export), then invite people: sotto admin invite USER\n", displayOrg(*orgName), fp, c.Username(), c.DeviceID()))
}

// readOptional reads the file at path ("" : nil).
func readOptional(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return os.ReadFile(path)
}

func adminInvite(e *env, args []string) error {
	fs := e.flagSet("admin invite")
	asJSON := fs.Bool("json", false, "print JSON")
	days := fs.Int("days", 365, "the invitation, and the subscription it grants, run this many `DAYS`")
	relayURL := fs.String("relay", "", "the relay's `URL` as the invited device reaches it (default: this device's)")
	out := fs.String("out", "", "also write the invitation to `FILE` (mode 0600)")
	relayCA := fs.String("relay-ca", "", "the relay's TLS CA certificate (PEM `FILE`) to hand on (default: this device's)")
	relayPin := fs.String("relay-pin", "", "the relay certificate's public key pin, `SHA256` in hex, to hand on (default: this device's)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *days < 1 {
		return errUsage
	}
	// Through the device's agent (POST /v1/admin/invitations): the running
	// one, or one served in this process for this command.
	req := api.InviteRequest{User: pos[0], Days: *days, Relay: *relayURL, RelayPin: *relayPin}
	if *relayCA != "" {
		ca, err := os.ReadFile(*relayCA)
		if err != nil {
			return err
		}
		req.RelayCA = string(ca)
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	var a api.InviteAnswer
	err = s.api.Do(e.ctx, http.MethodPost, "/admin/invitations", req, &a)
	s.close()
	if err != nil {
		return agentError(e, err)
	}
	text := a.Invitation
	if *out != "" {
		if err := os.WriteFile(*out, []byte(text+"\n"), 0o600); err != nil {
			return err
		}
	}
	user := strings.ToLower(strings.TrimSpace(pos[0]))
	if *asJSON {
		return emit(e, true, map[string]any{"user": user, "invitation": text, "days": *days}, "")
	}
	fmt.Fprintf(e.stdout, "invitation for %s, valid %d days (hand it over in person or by a channel the relay does not control;\n"+
		"whoever holds it can enroll as %s until it is used):\n\n%s\n\n", user, *days, user, text)
	fmt.Fprintf(e.stdout, "on the new device: sotto enroll --invitation INVITATION\n")
	if isTerminal(e.stdout) {
		return writeQR(e.stdout, text)
	}
	return nil
}

func readSecretFile(path, what string) ([]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("%s: --export-passphrase-file is required", what)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return []byte(strings.TrimRight(string(b), "\r\n")), nil
}

func adminExport(e *env, args []string) error {
	fs := e.flagSet("admin export")
	out := fs.String("out", "", "write the sealed key to `FILE`")
	passFile := fs.String("export-passphrase-file", "", "seal with the passphrase in `FILE` (give it to the other admin separately)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errUsage
	}
	pass, err := readSecretFile(*passFile, "export")
	if err != nil {
		return err
	}
	defer clear(pass)
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	sealed, err := c.ExportOrgKey(e.ctx, pass)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(sealed+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "organization key sealed to %s\n", *out)
	return nil
}

func adminImport(e *env, args []string) error {
	fs := e.flagSet("admin import")
	in := fs.String("in", "", "read the sealed key from `FILE`")
	passFile := fs.String("export-passphrase-file", "", "the passphrase it was sealed with, in `FILE`")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return errUsage
	}
	pass, err := readSecretFile(*passFile, "import")
	if err != nil {
		return err
	}
	defer clear(pass)
	sealed, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.ImportOrgKey(e.ctx, string(sealed), pass); err != nil {
		return err
	}
	fp, _ := c.OrgFingerprint(e.ctx)
	fmt.Fprintf(e.stdout, "organization key %s imported\n", fp)
	return nil
}

func adminNotice(e *env, args []string) error {
	fs := e.flagSet("admin notice")
	asJSON := fs.Bool("json", false, "print JSON")
	wait := fs.Duration("wait", 0, "wait up to `D` for every device's signed receipt")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errUsage
	}
	if ok, err := noticeViaAgent(e, strings.Join(pos, " "), *wait, *asJSON); ok || err != nil { // adminagent.go
		return err
	}
	c, err := e.connect(false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	n, err := c.PublishNotice(e.ctx, strings.Join(pos, " "))
	if err != nil {
		return err
	}
	if err := emit(e, *asJSON, map[string]int{"devices": n}, fmt.Sprintf("notice signed and queued for %d devices\n", n)); err != nil {
		return err
	}
	return waitDelivery(e, c, *wait, *asJSON)
}

// adminMemberAccess publishes a new member access key: every member may
// then send sealed to every member, first messages included.
func adminMemberAccess(e *env, args []string) error {
	fs := e.flagSet("admin member-access")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return errUsage
	}
	// Beside a running agent: it signs and publishes the key.
	var a api.PublishAnswer
	s, ok, err := viaAgent(e, http.MethodPost, "/admin/member-access", nil, &a)
	if err != nil {
		return err
	}
	n := a.Devices
	if ok {
		s.close()
	} else {
		c, err := e.connect(false, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if n, err = c.PublishMemberAccess(e.ctx); err != nil {
			return err
		}
	}
	return emit(e, *asJSON, map[string]int{"devices": n}, fmt.Sprintf("member access key signed and queued for %d devices\n", n))
}

func adminWipe(e *env, args []string) error {
	fs := e.flagSet("admin wipe")
	asJSON := fs.Bool("json", false, "print JSON")
	valid := fs.Duration("valid", 7*24*time.Hour, "the order expires after `D` (an offline device must connect before)")
	wait := fs.Duration("wait", 0, "wait up to `D` for the device's signed confirmation")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return errUsage
	}
	id, err := strconv.ParseUint(pos[1], 10, 32)
	if err != nil {
		return fmt.Errorf("admin wipe: bad device id %q", pos[1])
	}
	if ok, err := wipeViaAgent(e, pos[0], id, *valid, *wait, *asJSON); ok || err != nil { // adminagent.go
		return err
	}
	c, err := e.connect(false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.OrgWipe(e.ctx, pos[0], uint32(id), *valid); err != nil {
		return err
	}
	if err := emit(e, *asJSON, map[string]any{"user": pos[0], "device": id, "queued": true},
		fmt.Sprintf("wipe order for %s device %d signed and queued: the device wipes itself when it next connects\n", pos[0], id)); err != nil {
		return err
	}
	return waitDelivery(e, c, *wait, *asJSON)
}

func durationSeconds(fs *flag.FlagSet, name, usage string) *uint32 {
	v := new(uint32)
	fs.Func(name, usage, func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 || d > 10*365*24*time.Hour {
			return fmt.Errorf("bad duration %q", s)
		}
		*v = uint32(d / time.Second)
		return nil
	})
	return v
}

func adminPolicySet(e *env, args []string) error {
	fs := e.flagSet("admin policy set")
	asJSON := fs.Bool("json", false, "print JSON")
	p := &org.Policy{}
	unlocks := fs.Uint("failed-unlocks", 0, "wipe a device after `N` wrong passphrases (0: the default, 10)")
	version := fs.Uint64("version", 0, "the policy's version (0: the one in force plus one)")
	idle := durationSeconds(fs, "idle-lock", "lock a client idle for `D` (0: never)")
	dmin := durationSeconds(fs, "disappearing-min", "shortest disappearing-message timer `D` allowed")
	dmax := durationSeconds(fs, "disappearing-max", "longest disappearing-message timer `D` allowed")
	minBits := fs.Uint("min-passphrase-bits", 0, "devices' passphrases must reach `N` bits of estimated guessing entropy (0: the client's 50)")
	wbound := durationSeconds(fs, "witness-bound", "alarm when a key log head stays `D` without the org witness's co-signature (0: 24h)")
	fs.BoolVar(&p.AttachmentsDisabled, "no-attachments", false, "forbid attachments")
	fs.BoolVar(&p.CallsDisabled, "no-calls", false, "forbid calls")
	fs.StringVar(&p.MinClientVersion, "min-version", "", "devices below Sotto `V` (e.g. v1.2.0) keep reading but cannot send until updated")
	fs.BoolVar(&p.SealedOnly, "sealed-only", false, "never send a message naming its sender when the relay refuses sealed delivery, whatever the user's sealed-fallback setting")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	p.FailedUnlockLimit, p.Version = uint32(*unlocks), *version
	p.IdleLockSeconds, p.DisappearingMinSeconds, p.DisappearingMaxSeconds = *idle, *dmin, *dmax
	p.WitnessBoundSeconds = *wbound
	p.MinPassphraseBits = uint32(*minBits)
	if p.MinClientVersion != "" {
		if _, err := release.ParseVersion(p.MinClientVersion); err != nil {
			return fmt.Errorf("--min-version: %w", err)
		}
	}
	// Beside a running agent: it signs and publishes the policy.
	var a api.PublishAnswer
	s, ok, err := viaAgent(e, http.MethodPut, "/admin/policy", api.Policy{Version: p.Version, FailedUnlockLimit: p.FailedUnlockLimit,
		IdleLockSeconds: p.IdleLockSeconds, DisappearingMinSecs: p.DisappearingMinSeconds, DisappearingMaxSecs: p.DisappearingMaxSeconds,
		AttachmentsDisabled: p.AttachmentsDisabled, CallsDisabled: p.CallsDisabled, SealedOnly: p.SealedOnly,
		MinPassphraseBits: p.MinPassphraseBits, WitnessBoundSeconds: p.WitnessBoundSeconds, MinClientVersion: p.MinClientVersion}, &a)
	if err != nil {
		return err
	}
	n := a.Devices
	if ok {
		s.close()
	} else {
		c, err := e.connect(false, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if n, err = c.PublishPolicy(e.ctx, p); err != nil {
			return err
		}
	}
	return emit(e, *asJSON, map[string]int{"devices": n}, fmt.Sprintf("policy signed and queued for %d devices\n", n))
}

// policyJSON is the policy in force as printed.
type policyJSON struct {
	Version            uint64 `json:"version"`
	FailedUnlockLimit  int    `json:"failed_unlock_limit"`
	IdleLockSeconds    uint32 `json:"idle_lock_seconds"`
	DisappearingMinSec uint32 `json:"disappearing_min_seconds"`
	DisappearingMaxSec uint32 `json:"disappearing_max_seconds"`
	Attachments        bool   `json:"attachments"`
	Calls              bool   `json:"calls"`
	SealedOnly         bool   `json:"sealed_only"`
}

func adminPolicyShow(e *env, args []string) error {
	fs := e.flagSet("admin policy show")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := c.OrgPolicy(e.ctx)
	if err != nil {
		return err
	}
	j := policyJSON{Version: p.GetVersion(), FailedUnlockLimit: p.UnlockLimit(), IdleLockSeconds: p.GetIdleLockSeconds(),
		DisappearingMinSec: p.GetDisappearingMinSeconds(), DisappearingMaxSec: p.GetDisappearingMaxSeconds(),
		Attachments: p.AttachmentsAllowed(), Calls: p.CallsAllowed(), SealedOnly: !p.SealedFallbackAllowed()}
	text := "no organization policy received: defaults apply\n"
	if p != nil {
		text = fmt.Sprintf("policy version %d\nfailed unlocks before wipe:\t%d\nidle lock:\t%v\ndisappearing timer:\t%v to %v\nattachments:\t%v\ncalls:\t%v\nsealed only:\t%v\n",
			j.Version, j.FailedUnlockLimit, time.Duration(j.IdleLockSeconds)*time.Second,
			time.Duration(j.DisappearingMinSec)*time.Second, time.Duration(j.DisappearingMaxSec)*time.Second, j.Attachments, j.Calls, j.SealedOnly)
	}
	return emit(e, *asJSON, j, text)
}

func adminCertify(e *env, args []string) error {
	fs := e.flagSet("admin members certify")
	asJSON := fs.Bool("json", false, "print JSON")
	valid := fs.Duration("valid", 365*24*time.Hour, "the certificate is valid for `D`")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errUsage
	}
	// Through the device's agent (POST /v1/admin/certify).
	req := api.CertifyRequest{User: pos[0], Days: int(*valid / (24 * time.Hour))}
	if *valid%(24*time.Hour) != 0 {
		req.Days, req.ValidSeconds = 0, int64(*valid/time.Second)
		if req.ValidSeconds < 1 {
			return errUsage
		}
	}
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	var a api.PublishAnswer
	if err := s.api.Do(e.ctx, http.MethodPost, "/admin/certify", req, &a); err != nil {
		return agentError(e, err)
	}
	return emit(e, *asJSON, map[string]any{"user": pos[0], "devices": a.Devices},
		fmt.Sprintf("membership of %s certified; sent to %d devices\n", pos[0], a.Devices))
}

func adminMembers(e *env, args []string) error {
	fs := e.flagSet("admin members list")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	c, err := e.open(nil)
	if err != nil {
		return err
	}
	defer c.Close()
	ms, err := c.Members(e.ctx)
	if err != nil {
		return err
	}
	if ms == nil {
		ms = []client.Member{}
	}
	var b strings.Builder
	for i := range ms {
		ms[i].User = safetext.Name(ms[i].User)
		fmt.Fprintf(&b, "%s\tuntil %s\n", ms[i].User, ms[i].Expires.UTC().Format(time.DateOnly))
	}
	return emit(e, *asJSON, ms, b.String())
}

// cmdNotices lists the verified notices of the organization.
func cmdNotices(e *env, args []string) error {
	fs := e.flagSet("notices")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	s, err := e.session(false)
	if err != nil {
		return err
	}
	defer s.close()
	a, err := s.api.Notices(e.ctx)
	if err != nil {
		return agentError(e, err)
	}
	ns, rejected := a.Notices, a.Rejected
	if ns == nil {
		ns = []client.Notice{}
	}
	var b strings.Builder
	for i := range ns {
		ns[i].Text = safetext.Body(ns[i].Text)
		fmt.Fprintf(&b, "[%s] organization (verified): %s\n", ns[i].Issued.Local().Format(time.DateTime), safetext.Block(ns[i].Text, contPrefix))
	}
	if rejected > 0 {
		fmt.Fprintf(&b, "%d organization documents failed verification and were dropped\n", rejected)
	}
	return emit(e, *asJSON, map[string]any{"notices": ns, "rejected": rejected}, b.String())
}

// printOrgEvent prints the organization's events; it reports whether ev
// was one.
func printOrgEvent(e *env, ev client.Event, asJSON bool) bool {
	switch ev.Kind {
	case client.EventOrgNotice:
		if asJSON {
			b, _ := json.Marshal(map[string]any{"notice": safetext.Body(ev.Notice.Text), "from": "organization", "ts": ev.Notice.Issued.UnixMilli()})
			fmt.Fprintf(e.stdout, "%s\n", b)
		} else {
			fmt.Fprintf(e.stdout, "[%s] organization (verified): %s\n", tui.Stamp(ev.Notice.Issued, time.Now(), true), safetext.Block(ev.Notice.Text, contPrefix))
		}
	case client.EventOrgPolicy:
		fmt.Fprintln(e.stderr, "! a new organization policy is in force (sotto admin policy show)")
	case client.EventOrgRejected:
		fmt.Fprintf(e.stderr, "! an organization document failed verification and was dropped: %s\n", errText(ev.Err))
	default:
		return false
	}
	return true
}

func adminDelivery(e *env, args []string) error {
	fs := e.flagSet("admin delivery")
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 20, "the last `N` documents")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if ok, err := deliveryViaAgent(e, *limit, *asJSON); ok || err != nil { // adminagent.go
		return err
	}
	c, err := e.connect(false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	ds, err := c.Deliveries(e.ctx, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return emit(e, true, ds, "")
	}
	if len(ds) == 0 {
		fmt.Fprintln(e.stdout, "nothing published from this device")
	}
	for _, d := range ds {
		fmt.Fprintln(e.stdout, deliveryLine(d))
	}
	return nil
}

func deliveryLine(d client.Delivery) string {
	what := d.Kind
	if d.Kind == "wipe" {
		what = fmt.Sprintf("wipe of %s device %d", d.User, d.Device)
	}
	line := fmt.Sprintf("%s  %s  %s: applied by %d of %d devices", d.At.Local().Format("2006-01-02 15:04"), d.ID[:12], what, len(d.Applied), d.Queued)
	if d.Bad > 0 {
		line += fmt.Sprintf(" (%d receipts with a bad signature ignored)", d.Bad)
	}
	return line
}

// waitDelivery waits up to d for the newest published document to be
// applied by every device it was queued for, then prints how far it got.
func waitDelivery(e *env, c *client.Client, d time.Duration, asJSON bool) error {
	if d <= 0 {
		if !asJSON {
			fmt.Fprintln(e.stdout, "(sotto admin delivery shows how many devices applied it)")
		}
		return nil
	}
	deadline := time.Now().Add(d)
	for {
		ds, err := c.Deliveries(e.ctx, 1)
		if err != nil {
			return err
		}
		if len(ds) == 1 && (len(ds[0].Applied) >= ds[0].Queued || !time.Now().Before(deadline)) {
			if asJSON {
				return emit(e, true, ds[0], "")
			}
			fmt.Fprintln(e.stdout, deliveryLine(ds[0]))
			return nil
		}
		select {
		case <-e.ctx.Done():
			return e.ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
