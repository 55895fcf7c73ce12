package redteam

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"sotto/client"
	"sotto/client/org"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/relay"
	"sotto/signal/keys"
	"sotto/transparency"
	"sotto/wire"
)

// A hostile relay swapping keys: a foreign key logged and served for a
// known contact, and a ghost device added to an account.

func keyAttacks() []Attack {
	return []Attack{
		{
			Name:    "key-swap-logged",
			Threat:  "the relay replaces a known contact's identity key with one it holds, logs the swap in its key log and serves it, to read what is sent next",
			Defence: "the swapped key has no org certificate, so the sender sends nothing to it (ErrNotCertified); the owner's audit on every connection finds the foreign key in the log (alarm `foreign-key`)",
			Verified: byHand + "with checkCertified returning nil the send is still refused, by the key change rule (a changed key waits for the user's acceptance), " +
				"and the owner's audit still raises `foreign-key`: two layers, of which this attack checks both",
			Run: runKeySwap,
		},
		{
			Name:     "ghost-device",
			Threat:   "the relay adds a device of its own to bob's account (its own device key and prekeys), so that senders encrypt a copy of every message to it",
			Defence:  "a device's signed prekey must verify under the account's identity key, which only the account's devices hold (the relay cannot sign for it): the ghost's bundle is refused and nothing is encrypted to it",
			Verified: "no switch, not mutation-checked: the prekey signature check is libsignal's (signal/session), exercised on every bundle",
			Run:      runGhostDevice,
		},
		{
			Name:    "split-view",
			Threat:  "the relay shows some users a key log in which it rewrote alice's binding to a key of its own (same size, and one leaf longer), and the others the honest log",
			Defence: "clients use only heads the org's witness co-signed (after a bound, `unwitnessed`); the witness co-signs only a head consistent with the last one it co-signed (witness/, HTTP 422)",
			Verified: "no switch, not mutation-checked here: the run submits the forks to a real witness over HTTP after it co-signed the honest head; " +
				"client TestWitnessSplitView shows the client's `fork` and `unwitnessed` alarms",
			Run: runSplitView,
		},
		{
			Name:     "device-outside-org",
			Threat:   "the relay's operator registers a seat of its own (its key in org_key for a moment) and enrolls a device with an invitation the organization never made: an account outside the org that wipes, notices and policies never reach",
			Defence:  "enrollment needs an identity certificate chaining to the org key the relay registered (relay/invite.go): FORBIDDEN, no account, no store. A relay that skips the check gets an account whose key no member accepts (impostor-first-contact), shown NOT CERTIFIED by `sottod admin devices list`",
			Verified: "no switch, not mutation-checked here (client TestNoDeviceOutsideTheOrganization and relay TestEnrollmentNeedsCertificate cover the refusals)",
			Run:      runOutsideOrg,
		},
	}
}

func runOutsideOrg(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	r, err := e.StartRelay(ctx, RelayOptions{})
	if err != nil {
		return Outcome{}, err
	}
	ownPub, own, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Outcome{}, err
	}
	now := time.Now()
	inv, grant, err := org.MintInvitation(own, org.MintParams{Username: "frank", Expires: now.Add(time.Hour), RelayURL: r.WS,
		LogKey: r.LogKey.Public().(ed25519.PublicKey), OrgName: r.Org.Name, Now: now})
	if err != nil {
		return Outcome{}, err
	}
	// The operator registers the seat behind the organization's back: its
	// own key in org_key for a moment, then the real one again.
	if err := r.Store.SetOrgKey(ctx, ownPub); err != nil {
		return Outcome{}, err
	}
	if _, err := relay.RegisterInvitations(ctx, r.Store, []*wire.OrgDocument{grant}, now); err != nil {
		return Outcome{}, err
	}
	if err := r.Store.SetOrgKey(ctx, r.Org.Public()); err != nil {
		return Outcome{}, err
	}
	text, err := inv.Text()
	if err != nil {
		return Outcome{}, err
	}
	opened, err := org.ParseInvitation(text, now)
	if err != nil {
		return Outcome{}, err
	}
	dir, err := e.Dir()
	if err != nil {
		return Outcome{}, err
	}
	_, err = client.Enroll(ctx, client.EnrollParams{Dir: dir, Passphrase: []byte("red team"), Invitation: opened, DeviceName: "device"},
		&client.Options{KDF: fastKDF, MinPassphraseBits: store.NoPassphrasePolicy})
	if transport.Code(err) != wire.ErrorCode_FORBIDDEN {
		return through("enrollment with an invitation signed by another key: %v", err), nil
	}
	if _, serr := os.Stat(filepath.Join(dir, "key.json")); !errors.Is(serr, os.ErrNotExist) {
		return through("refused, but a store was left behind (%v)", serr), nil
	}
	if n, cerr := r.Count(ctx, `SELECT count(*) FROM accounts WHERE username = 'frank'`); cerr != nil || n != 0 {
		return through("an account frank exists (%d, %v)", n, cerr), nil
	}
	return stopped("a seat the operator registered with its own key: %v; no account, no store", err), nil
}

// fakeIdentity is a Signal identity public key nobody's device holds.
func fakeIdentity() ([]byte, error) {
	kp, err := keys.GenerateKeyPair(rand.Reader)
	if err != nil {
		return nil, err
	}
	return kp.Public.Serialize(), nil
}

func runKeySwap(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	r, m, err := e.World(ctx, RelayOptions{}, []string{"alice", "bob"})
	if err != nil {
		return Outcome{}, err
	}
	alice, bob := m["alice"], m["bob"]
	if err := acquainted(ctx, alice, bob); err != nil {
		return Outcome{}, err
	}
	fake, err := fakeIdentity()
	if err != nil {
		return Outcome{}, err
	}
	leaf, err := (&transparency.Binding{Kind: transparency.KindReplace, Username: "bob", IdentityKey: fake, TimestampMS: time.Now().UnixMilli()}).Encode()
	if err != nil {
		return Outcome{}, err
	}
	if _, err := r.Store.AppendLogLeaf(ctx, "bob", leaf); err != nil {
		return Outcome{}, err
	}
	if err := r.Exec(ctx, fmt.Sprintf(`UPDATE accounts SET identity_key = x'%x' WHERE username = 'bob'`, fake)); err != nil {
		return Outcome{}, err
	}
	refused := alice.RefreshIdentity(ctx, "bob")
	if refused == nil {
		if _, refused = alice.Send(ctx, "bob", "after the swap"); refused == nil {
			return through("alice accepted the swapped key and sent to it"), nil
		}
	}
	if _, err := bob.AuditKeyLog(ctx); err != nil {
		return Outcome{}, err
	}
	alarms, err := bob.TransparencyAlarms(ctx)
	if err != nil {
		return Outcome{}, err
	}
	for _, a := range alarms {
		if a.Kind == client.AlarmForeignKey {
			return stopped("alice refused the swapped key (%v); bob's audit raised %q", refused, a.Kind), nil
		}
	}
	return through("alice refused the key (%v), but bob's audit raised nothing (%d alarms)", refused, len(alarms)), nil
}

func runGhostDevice(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	r, m, err := e.World(ctx, RelayOptions{}, []string{"alice"}, "bob")
	if err != nil {
		return Outcome{}, err
	}
	alice := m["alice"]
	ghost, err := keys.GenerateKeyPair(rand.Reader)
	if err != nil {
		return Outcome{}, err
	}
	// Device 9 of bob: bob's device 1's rows copied, with the relay's own
	// signed EC prekey (the signature, bob's, does not cover it).
	acct := `(SELECT id FROM accounts WHERE username = 'bob')`
	if err := r.Exec(ctx,
		`INSERT INTO devices (account, device, device_key, registration_id, name, created_ms, last_seen_ms)
			SELECT account, 9, device_key, registration_id + 1, 'ghost', created_ms, last_seen_ms FROM devices WHERE account = `+acct+` AND device = 1`,
		`INSERT INTO signed_prekeys (account, device, kind, key_id, pub, sig)
			SELECT account, 9, kind, key_id, pub, sig FROM signed_prekeys WHERE account = `+acct+` AND device = 1`,
		fmt.Sprintf(`UPDATE signed_prekeys SET pub = x'%x' WHERE account = %s AND device = 9 AND kind = 0`, ghost.Public.Serialize(), acct),
	); err != nil {
		return Outcome{}, err
	}
	_, sendErr := alice.Send(ctx, "bob", "for bob's eyes only")
	n, err := r.Count(ctx, `SELECT count(*) FROM envelopes WHERE account = `+acct+` AND device = 9`)
	if err != nil {
		return Outcome{}, err
	}
	if n > 0 {
		return through("%d envelope(s) stored for the ghost device", n), nil
	}
	if sendErr == nil {
		return Outcome{}, errors.New("the send succeeded with no envelope for device 9: the relay did not list the ghost")
	}
	return stopped("alice's send to bob with a ghost device 9 listed: refused (%v); nothing stored for the ghost", sendErr), nil
}
