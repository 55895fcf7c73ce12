package redteam

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sotto/client"
	"sotto/relay"
	"sotto/relay/blobstore"
	"sotto/wire"
)

// What the relay learns about who talks to whom: sealed sender switched
// off behind the user's back, first messages that name their sender,
// receipts that link by timing, blobs that name their uploader, TURN
// credentials that name the parties.

func metadataAttacks() []Attack {
	return []Attack{
		{
			Name:    "sealed-downgrade",
			Threat:  "the relay corrupts the recipient's access_keys row so that sealed sends are refused and the client falls back, silently and for good, to sends that name their sender",
			Defence: "a refused sealed send is retried once with a fresh key, then refused (ErrSealedRefused), never sent named without the user's `sealed-fallback` (and never under an org `sealed_only` policy); devices re-upload their access key on every connect (client/sealedsender, client/sealed.go)",
			Switch:  "the user's consent: `sealed-fallback` on (the send then goes named, and is counted and shown)",
			Run:     runSealedDowngrade,
		},
		{
			Name:    "first-message-named",
			Threat:  "the relay learns who starts talking to whom: the first message to a contact, before their profile key is known, named its sender",
			Defence: "the organization's member access key (signed by the org key, the same for every member) authorizes a sealed send to any member (client/orgstate/apply.go, client/sealedsender/conn.go, relay/memberaccess.go)",
			Switch:  "no member access key published by the admin",
			Run:     runFirstMessage,
		},
		{
			Name:    "revoked-contact",
			Threat:  "a member alice no longer wants to hear from (mallory) keeps sending her sealed messages with the access key of alice's profile key, or with the organization's member key every member holds",
			Defence: "client.RevokeContact: a new profile key (not given to mallory), and the relay told to refuse the member key for alice (SetAccessKeyRequest.refuse_member_access, relay/memberrefuse.go); other contacts get the new key with alice's next message",
			Switch:  "no revocation",
			Run:     runRevokedContact,
		},
		revokedLinkedAttack(),
		{
			Name:    "send-history",
			Threat:  "whoever reads the relay's database (its operator, or a thief of its disk) learns who sent a message when, long after: a `sends` row per message was kept 30 days, and `accounts.code_id` grouped people by invitation",
			Defence: "a send's dedupe record lives only as long as idempotency needs (-dedupe-ttl, 10 min, at most 1.5 times that) and a sealed send's names nobody; no code id is kept with an account",
			Switch:  "a dedupe retention of 30 days (relay.Config.DedupeTTL, as before issue 12)",
			Run:     runSendHistory,
		},
		{
			Name:    "receipt-timing",
			Threat:  "the relay links recipient and sender because a delivery receipt leaves ~8 ms after the recipient's ack, from the recipient's connection",
			Defence: "receipts are batched per contact, sent sealed, after a random delay of 1 to 10 s (client/conversation/receipts.go, sent by client/receipts.go)",
			Verified: "no switch in the product (receipts can only be turned off); mutation-checked by hand (2026-12-07): without the wait in the receipt queue " +
				"the receipt leaves at once and this attack fails (client TestReceiptsDelayedBatchedSealed checks the batching)",
			Run: runReceiptTiming,
		},
		{
			Name:    "blob-uploader",
			Threat:  "the relay links the uploader of an attachment to its downloaders through the blob index",
			Defence: "a blob's record names no uploader (relay/blobstore: id, write-key hash, size, times); the quota is a daily sum per device, never per blob",
			Verified: "no switch, not mutation-checked: the run reads the real index file's columns after a real upload (relay/sqlitestore TestRecordsTableMatchesSchema checks the same schema). " +
				"Limit: a device's only upload of a day makes that day's charge equal its size",
			Run: runBlobUploader,
		},
		{
			Name:    "turn-usernames",
			Threat:  "TURN usernames (in clear on the TURN port) were `expiry:alice.1`: anybody on the path learned who called",
			Defence: "opaque credentials: `expiry:nonce` with 130 random bits per credential (relay/turn.go); no TURN at all while a direct path works (client/call)",
			Verified: "no switch, not mutation-checked: each run inspects two real credentials for the device's name and id and for repetition; " +
				"the direct-call half is client/call TestDirectCallAllocatesNothing (a real call, no allocation), not mounted here",
			Run: runTURNUsernames,
		},
	}
}

// envelopeSenders returns the sender column of the envelopes queued for
// user's devices, as the relay's operator reads them.
func (r *Relay) envelopeSenders(ctx context.Context, user string) ([]string, error) {
	db, err := r.DB()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT e.sender FROM envelopes e JOIN accounts a ON a.id = e.account WHERE a.username = ? ORDER BY e.seq`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// waitSenders waits until n envelopes are queued for user and returns
// their senders.
func (r *Relay) waitSenders(ctx context.Context, user string, n int) ([]string, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := r.envelopeSenders(ctx, user)
		if err != nil || len(s) >= n {
			return s, err
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%d envelopes for %s, want %d", len(s), user, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// acquainted has alice and bob exchange a message each way and waits
// until each sends sealed to the other (they learned each other's
// profile key).
func acquainted(ctx context.Context, alice, bob *Member) error {
	for _, p := range []struct{ from, to *Member }{{alice, bob}, {bob, alice}} {
		text := "hello " + p.to.Username()
		if _, err := p.from.Send(ctx, p.to.Username(), text); err != nil {
			return err
		}
		if _, err := p.to.WaitEvent(ctx, client.EventMessage, func(ev client.Event) bool { return Text(ev) == text }); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, errA := alice.SendsSealed(ctx, bob.Username())
		b, errB := bob.SendsSealed(ctx, alice.Username())
		if err := errors.Join(errA, errB); err != nil {
			return err
		}
		if a && b {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the profile keys were never learned")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func runSealedDowngrade(ctx context.Context, e *Env, on bool) (Outcome, error) {
	r, m, err := e.World(ctx, RelayOptions{}, []string{"alice", "bob"})
	if err != nil {
		return Outcome{}, err
	}
	alice, bob := m["alice"], m["bob"]
	if err := acquainted(ctx, alice, bob); err != nil {
		return Outcome{}, err
	}
	if !on {
		if err := alice.SetSettings(ctx, client.Settings{ReadReceipts: true, SealedFallback: true}); err != nil {
			return Outcome{}, err
		}
	}
	// Bob offline (so that what is sent to him stays queued), his access
	// key corrupted behind the relay's back.
	bob.Disconnect()
	if err := bob.WaitReceipts(ctx); err != nil {
		return Outcome{}, err
	}
	junk := make([]byte, 16)
	rand.Read(junk)
	if err := r.Exec(ctx, fmt.Sprintf(`UPDATE access_keys SET key = x'%x' WHERE account = (SELECT id FROM accounts WHERE username = 'bob')`, junk)); err != nil {
		return Outcome{}, err
	}
	before, err := r.envelopeSenders(ctx, "bob")
	if err != nil {
		return Outcome{}, err
	}
	_, sendErr := alice.Send(ctx, "bob", "while corrupted")
	after, err := r.envelopeSenders(ctx, "bob")
	if err != nil {
		return Outcome{}, err
	}
	for _, s := range after[len(before):] {
		if s != "" {
			n, _ := alice.SealedDowngrades(ctx)
			return through("the message went out naming %q (downgrades counted: %d)", s, n), nil
		}
	}
	if errors.Is(sendErr, client.ErrSealedRefused) {
		return stopped("alice's send to bob with a corrupted access key: %v; nothing went out named", sendErr), nil
	}
	return Outcome{}, fmt.Errorf("send: %v; %d new envelopes, none named", sendErr, len(after)-len(before))
}

// publishMemberAccess has the relay keep a member access document signed
// by the org key, as the admin's PublishMemberAccess leaves it.
func publishMemberAccess(ctx context.Context, r *Relay) error {
	m := &wire.MemberAccess{Version: 1, IssuedMs: time.Now().UnixMilli(), AccessKey: make([]byte, wire.AccessKeySize)}
	rand.Read(m.AccessKey)
	doc, err := signed(r.Org.Key, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, m)
	if err != nil {
		return err
	}
	return r.Store.PutOrgDocument(ctx, wire.OrgDocumentKind_ORG_MEMBER_ACCESS, "", doc)
}

func runFirstMessage(ctx context.Context, e *Env, on bool) (Outcome, error) {
	r, m, err := e.World(ctx, RelayOptions{MemberAccess: on}, nil, "alice", "bob")
	if err != nil {
		return Outcome{}, err
	}
	if _, err := m["alice"].Send(ctx, "bob", "first words"); err != nil {
		return Outcome{}, err
	}
	senders, err := r.waitSenders(ctx, "bob", 1)
	if err != nil {
		return Outcome{}, err
	}
	for _, s := range senders {
		if s != "" {
			return through("the first message is stored naming %q", s), nil
		}
	}
	return stopped("alice's first message to bob, a new contact: %d envelope(s) queued, none names a sender", len(senders)), nil
}

// delays records the receipt delays a client draws and releases them at
// once.
type delays struct {
	mu sync.Mutex
	d  []time.Duration
}

func (d *delays) wait(_ context.Context, x time.Duration) error {
	d.mu.Lock()
	d.d = append(d.d, x)
	d.mu.Unlock()
	return nil
}

func runReceiptTiming(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	r, m, err := e.World(ctx, RelayOptions{MemberAccess: true}, nil, "alice")
	if err != nil {
		return Outcome{}, err
	}
	alice := m["alice"]
	var drawn delays
	events := make(chan client.Event, 256)
	o := MemberOptions(events)
	o.ReceiptDelayMin, o.ReceiptDelayMax, o.ReceiptWait = 0, 0, drawn.wait // the product's 1–10 s, observed
	bob, err := e.EnrollWith(ctx, r, "bob", "", true, o, events)
	if err != nil {
		return Outcome{}, err
	}
	if _, err := alice.Send(ctx, "bob", "are you there?"); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.WaitEvent(ctx, client.EventMessage, nil); err != nil {
		return Outcome{}, err
	}
	if err := bob.WaitReceipts(ctx); err != nil {
		return Outcome{}, err
	}
	senders, err := r.waitSenders(ctx, "alice", 1)
	if err != nil {
		return Outcome{}, err
	}
	drawn.mu.Lock()
	d := append([]time.Duration(nil), drawn.d...)
	drawn.mu.Unlock()
	if len(d) == 0 {
		return through("the receipt left with no delay"), nil
	}
	for _, s := range senders {
		if s != "" {
			return through("the receipt names its sender %q", s), nil
		}
	}
	if d[0] < client.DefaultReceiptDelayMin || d[0] > client.DefaultReceiptDelayMax {
		return through("receipt delay %v outside [%v, %v]", d[0], client.DefaultReceiptDelayMin, client.DefaultReceiptDelayMax), nil
	}
	return stopped("the delivery receipt waited a drawn %v (not ~8 ms after the ack) and went sealed: the relay stored it naming no sender", d[0].Round(time.Millisecond)), nil
}

func runBlobUploader(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	blobDir, err := e.Dir()
	if err != nil {
		return Outcome{}, err
	}
	idx, err := blobstore.Open(ctx, blobDir)
	if err != nil {
		return Outcome{}, err
	}
	e.OnClose(func() { idx.Close() })
	_, m, err := e.World(ctx, RelayOptions{Config: func(c *relay.Config) {
		c.Blobs = relay.DefaultBlobConfig()
		c.Blobs.Index, c.Blobs.Dir = idx, blobDir
	}}, nil, "alice", "bob")
	if err != nil {
		return Outcome{}, err
	}
	alice := m["alice"]
	dir, err := e.Dir()
	if err != nil {
		return Outcome{}, err
	}
	path := filepath.Join(dir, "report.pdf")
	if err := os.WriteFile(path, []byte(strings.Repeat("confidential ", 1000)), 0o600); err != nil {
		return Outcome{}, err
	}
	if _, err := alice.SendFile(ctx, "bob", path, client.FileOptions{}); err != nil {
		return Outcome{}, err
	}
	db, err := openIndex(blobDir)
	if err != nil {
		return Outcome{}, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info('blobs')`)
	if err != nil {
		return Outcome{}, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return Outcome{}, err
		}
		cols = append(cols, c)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM blobs`).Scan(&n); err != nil || n != 1 {
		return Outcome{}, fmt.Errorf("%d blobs in the index (%v), want 1", n, err)
	}
	for _, c := range cols {
		if c == "account" || c == "device" || strings.Contains(c, "owner") || strings.Contains(c, "user") {
			return through("the blob index names its uploader (column %s)", c), nil
		}
	}
	return stopped("alice's attachment is in the index with columns %v: nothing names her", cols), nil
}

func runTURNUsernames(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	secret := make([]byte, 32)
	rand.Read(secret)
	r, err := e.StartRelay(ctx, RelayOptions{Config: func(c *relay.Config) {
		c.TURN = &relay.TURNCredentials{Secret: secret, URLs: []string{"turn:127.0.0.1:3478"}}
	}})
	if err != nil {
		return Outcome{}, err
	}
	alice, err := e.Enroll(ctx, r, "alice", false)
	if err != nil {
		return Outcome{}, err
	}
	a, err := alice.TURNCredentials(ctx)
	if err != nil {
		return Outcome{}, err
	}
	b, err := alice.TURNCredentials(ctx)
	if err != nil {
		return Outcome{}, err
	}
	for _, u := range []string{a.Username, b.Username} {
		if strings.Contains(strings.ToLower(u), "alice") || strings.HasSuffix(u, fmt.Sprintf(".%d", alice.DeviceID())) {
			return through("the TURN username %q names its device", u), nil
		}
	}
	if a.Username == b.Username {
		return through("two credentials of one device share a username"), nil
	}
	return stopped("alice's TURN usernames %q and %q name no one and do not look alike", a.Username, b.Username), nil
}

// openIndex opens the blob index file read-only, as the operator can.
func openIndex(dir string) (*sql.DB, error) {
	return sql.Open("sqlite", "file:"+filepath.Join(dir, blobstore.FileName)+"?mode=ro")
}

func runRevokedContact(ctx context.Context, e *Env, on bool) (Outcome, error) {
	_, m, err := e.World(ctx, RelayOptions{MemberAccess: true}, []string{"alice", "bob", "mallory"})
	if err != nil {
		return Outcome{}, err
	}
	alice, bob, mallory := m["alice"], m["bob"], m["mallory"]
	for _, other := range []*Member{bob, mallory} {
		if err := acquainted(ctx, alice, other); err != nil {
			return Outcome{}, err
		}
	}
	if on {
		if err := alice.RevokeContact(ctx, "mallory"); err != nil {
			return Outcome{}, err
		}
	}
	_, err = mallory.Send(ctx, "alice", "you cannot get rid of me")
	if !errors.Is(err, client.ErrSealedRefused) {
		if err != nil {
			return Outcome{}, err
		}
		return through("mallory's sealed message to alice was accepted"), nil
	}
	// Bob, not revoked, gets the new key with alice's next message and
	// reaches her sealed again.
	if _, err := alice.Send(ctx, "bob", "my key changed"); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.WaitEvent(ctx, client.EventMessage, func(ev client.Event) bool { return Text(ev) == "my key changed" }); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.Send(ctx, "alice", "still friends"); err != nil {
		return through("mallory is refused, but so is bob: %v", err), nil
	}
	return stopped("after alice revoked mallory: mallory's send refused (%v); bob, given the new key, reaches alice sealed", client.ErrSealedRefused), nil
}

func runSendHistory(ctx context.Context, e *Env, on bool) (Outcome, error) {
	ttl := time.Second
	if !on {
		ttl = 30 * 24 * time.Hour
	}
	r, m, err := e.World(ctx, RelayOptions{Config: func(c *relay.Config) { c.DedupeTTL = ttl }}, nil, "alice", "bob")
	if err != nil {
		return Outcome{}, err
	}
	if _, err := m["alice"].Send(ctx, "bob", "the first message names its sender"); err != nil {
		return Outcome{}, err
	}
	named := `SELECT count(*) FROM send_log s JOIN accounts a ON a.id = s.account WHERE a.username = 'alice'`
	if n, err := r.Count(ctx, named); err != nil || n == 0 {
		return Outcome{}, fmt.Errorf("no send_log row for alice's named send (%d, %v)", n, err)
	}
	if n, err := r.Count(ctx, `SELECT count(*) FROM pragma_table_info('accounts') WHERE name = 'code_id'`); err != nil || n != 0 {
		return through("accounts has a code_id column (%v)", err), nil
	}
	// The expiry runs every DedupeTTL/2 (at least every second): wait
	// well past 1.5 TTL with the defence on; 3 s with it off.
	wait := 10 * time.Second
	if !on {
		wait = 3 * time.Second
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if n, err := r.Count(ctx, named); err != nil {
			return Outcome{}, err
		} else if n == 0 {
			return stopped("alice's send record was gone within %v of a %v dedupe window; accounts keep no code id", wait, ttl), nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return through("alice's send record is still there after %v (dedupe window %v)", wait, ttl), nil
}
