package redteam

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/client"
	"sotto/client/org"
	"sotto/internal/hostileproxy"
	"sotto/wire"
)

// A hostile relay against the roots of trust (issue 11) and the messages
// it carries: forged senders, replays and reflections, impostor keys, a
// swapped log key, forged and replayed organization documents.

const byHand = "no switch; mutation-checked by hand (2026-12-07): "

func trustAttacks() []Attack {
	return []Attack{
		{
			Name:    "forged-sender",
			Threat:  "the relay renames the sender of mallory's message to alice, so that bob reads mallory's words as alice's",
			Defence: "a first message's identity key must be the one the key log (and the org's certificate) holds for the claimed sender (checkLookup, client/transparency_first.go): ErrSenderNotInLog, nothing shown",
			Verified: byHand + "with checkLookup's verdict ignored in handleEnvelope (then client/receive.go, now client/pipeline.go `lookup`), bob shows mallory's message as alice's and this attack fails; " +
				"client TestSealedForgedSenderRefused covers a forged sender certificate",
			Run: runForgedSender,
		},
		{
			Name:     "replayed-frame",
			Threat:   "the relay delivers every envelope twice (and again later) so that a message or a payment request shows twice",
			Defence:  "the ratchet refuses a reused message key (session.ErrDuplicateMessage) and a message id is stored once (appendMessage)",
			Verified: "no switch, and not mutation-checked: a copy cannot be decrypted a second time (its message key is gone), so no single check can be removed to let it through",
			Run:      runReplay,
		},
		{
			Name:     "reflected-frame",
			Threat:   "the relay sends alice's own outgoing ciphertext back to her as if bob had written it",
			Defence:  "a Signal message decrypts only in the session and direction it was made for; nothing is shown",
			Verified: "no switch, and not mutation-checked: it holds by construction (the two directions of a session have different chains)",
			Run:      runReflect,
		},
		{
			Name:    "impostor-first-contact",
			Threat:  "the operator enrolls its own device under a name (carol) the organization never certified and serves its key to a new contact",
			Defence: "every served identity key needs an org → invitation → identity certificate chain (orgcert) before a first message: ErrNotCertified, alarm `uncertified-key`, nothing sent",
			Verified: byHand + "with checkCertified returning nil the send is still refused, by the key log (`unproven-key`: the relay did not log the renamed key), " +
				"and this attack fails because the certificate check is not what stopped it; a relay that also logs its key is stopped by the certificate alone (client TestImpostorFirstContactRefused)",
			Run: runImpostor,
		},
		{
			Name:     "log-key-mismatch",
			Threat:   "the relay leaves its key log's key out of the enrollment response, or sends its own, so that the device runs unchecked or trusts a log the relay forks",
			Defence:  "the log key is pinned from the invitation; enrollment stops on a missing or different key (ErrLogKeyMismatch) and leaves no store",
			Verified: byHand + "without the comparison in enrollWith (client/enroll.go) the device enrolls with the log key omitted and this attack fails",
			Run:      runLogKey,
		},
		{
			Name:     "forged-org-documents",
			Threat:   "the operator writes its own key into org_key and plants a wipe order, a notice and a policy signed with it in a member's mailbox",
			Defence:  "org documents are verified against the org key pinned from the invitation, never the relay's (client/orgstate/apply.go): ErrBadSignature, nothing applied",
			Verified: byHand + "with the signature check of org.Verify skipped, bob's device wipes itself on the operator's order and this attack fails",
			Run:      runForgedOrgDocs,
		},
		{
			Name:    "replayed-notice",
			Threat:  "the relay copies an old, genuinely signed notice into a new member's mailbox, to show it as new",
			Defence: "the invitation carries the newest notice sequence; a notice at or below it is refused (org.ErrStale)",
			Switch:  "an invitation without floors (notice sequence and policy version 0, as before issue 11)",
			Run:     runReplayedNotice,
		},
		{
			Name:    "rolled-back-policy",
			Threat:  "the relay serves an older, genuinely signed policy (laxer limits) to a device that has none yet",
			Defence: "the invitation carries the policy version in force; an older policy is refused (org.ErrStale)",
			Switch:  "an invitation without floors",
			Run:     runRolledBackPolicy,
		},
	}
}

// envelopeRule applies fn to every envelope the relay pushes to a client.
func envelopeRule(fn func(env *wire.Envelope, f *wire.Frame) []*wire.Frame) hostileproxy.Rule {
	return func(_ int, dir hostileproxy.Direction, f *wire.Frame) []*wire.Frame {
		if env := f.GetPush().GetEnvelope(); env != nil && dir == hostileproxy.ToClient {
			return fn(env, f)
		}
		return []*wire.Frame{f}
	}
}

// pair enrolls bob through a hostile proxy (receiving) and alice and
// mallory directly.
func (e *Env) trio(ctx context.Context, rule hostileproxy.Rule) (r *Relay, p *hostileproxy.Proxy, alice, bob, mallory *Member, err error) {
	if r, err = e.StartRelay(ctx, RelayOptions{}); err != nil {
		return
	}
	var url string
	p, url = e.Proxy(r, nil)
	if bob, err = e.EnrollVia(ctx, r, "bob", url, true); err != nil {
		return
	}
	if alice, err = e.Enroll(ctx, r, "alice", true); err != nil {
		return
	}
	if mallory, err = e.Enroll(ctx, r, "mallory", false); err != nil {
		return
	}
	p.SetRule(rule)
	return
}

func runForgedSender(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	var renamed atomic.Int32
	_, _, alice, bob, mallory, err := e.trio(ctx, envelopeRule(func(env *wire.Envelope, f *wire.Frame) []*wire.Frame {
		if env.Sender == "mallory" {
			env.Sender = "alice"
			renamed.Add(1)
		}
		return []*wire.Frame{f}
	}))
	if err != nil {
		return Outcome{}, err
	}
	if _, err := mallory.Send(ctx, "bob", "alice here: send the money"); err != nil {
		return Outcome{}, err
	}
	if _, err := alice.Send(ctx, "bob", "sentinel"); err != nil {
		return Outcome{}, err
	}
	n, err := bob.countUntil(ctx, "alice here: send the money", "sentinel")
	if err != nil {
		return Outcome{}, err
	}
	if renamed.Load() == 0 {
		return Outcome{}, errors.New("the proxy renamed no envelope: the attack was not mounted")
	}
	if n == 0 {
		return stopped("%d envelope(s) renamed mallory → alice; bob showed none of them", renamed.Load()), nil
	}
	return through("bob showed mallory's message %d time(s)", n), nil
}

func runReplay(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	var replayed atomic.Int32
	_, _, alice, bob, _, err := e.trio(ctx, envelopeRule(func(env *wire.Envelope, f *wire.Frame) []*wire.Frame {
		if env.Sender != "alice" {
			return []*wire.Frame{f}
		}
		replayed.Add(2)
		return []*wire.Frame{f, proto.Clone(f).(*wire.Frame), proto.Clone(f).(*wire.Frame)}
	}))
	if err != nil {
		return Outcome{}, err
	}
	if _, err := alice.Send(ctx, "bob", "pay the invoice"); err != nil {
		return Outcome{}, err
	}
	if _, err := alice.Send(ctx, "bob", "sentinel"); err != nil {
		return Outcome{}, err
	}
	n, err := bob.countUntil(ctx, "pay the invoice", "sentinel")
	if err != nil {
		return Outcome{}, err
	}
	if n == 1 {
		return stopped("each envelope pushed three times (%d replays); shown once", replayed.Load()), nil
	}
	return through("shown %d times", n), nil
}

func runReflect(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	r, err := e.StartRelay(ctx, RelayOptions{})
	if err != nil {
		return Outcome{}, err
	}
	p, url := e.Proxy(r, nil)
	alice, err := e.EnrollVia(ctx, r, "alice", url, true)
	if err != nil {
		return Outcome{}, err
	}
	bob, err := e.Enroll(ctx, r, "bob", true)
	if err != nil {
		return Outcome{}, err
	}
	if _, err := alice.Send(ctx, "bob", "the plan"); err != nil {
		return Outcome{}, err
	}
	var out *wire.OutgoingMessage
	for _, rec := range p.Seen() {
		if sm := rec.Frame.GetRequest().GetSendMessage(); rec.Dir == hostileproxy.ToRelay && sm.GetRecipient() == "bob" && len(sm.Messages) > 0 {
			out = sm.Messages[0]
		}
	}
	if out == nil {
		return Outcome{}, errors.New("alice's message to bob was not seen")
	}
	env := &wire.Envelope{Id: randomID(), Sender: "bob", SenderDevice: 1, ServerTimestampMs: time.Now().UnixMilli(),
		Type: out.Type, Content: out.Content, MessageId: randomID()}
	if _, err := p.Inject(ctx, "alice", hostileproxy.ToClient, hostileproxy.PushEnvelope(env)); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.Send(ctx, "alice", "sentinel"); err != nil {
		return Outcome{}, err
	}
	n, err := alice.countUntil(ctx, "the plan", "sentinel")
	if err != nil {
		return Outcome{}, err
	}
	if n == 0 {
		return stopped("alice's ciphertext pushed back to her as bob's: not shown"), nil
	}
	return through("alice showed her own message as bob's"), nil
}

func runImpostor(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	r, m, err := e.World(ctx, RelayOptions{}, []string{"dave"}, "mallory")
	if err != nil {
		return Outcome{}, err
	}
	dave := m["dave"]
	// The operator's device becomes carol: the relay renames its account.
	if err := r.Exec(ctx, `UPDATE accounts SET username = 'carol' WHERE username = 'mallory'`); err != nil {
		return Outcome{}, err
	}
	_, err = dave.Send(ctx, "carol", "the source's name is ...")
	if errors.Is(err, client.ErrNotCertified) {
		if h, _ := dave.History(ctx, "carol", 10); len(h) != 0 {
			return through("refused, but kept as sent: %d messages", len(h)), nil
		}
		return stopped("dave's first message to the relay's 'carol': %v", err), nil
	}
	return through("dave's first message to the relay's 'carol': %v", err), nil
}

func runLogKey(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	r, err := e.StartRelay(ctx, RelayOptions{})
	if err != nil {
		return Outcome{}, err
	}
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Outcome{}, err
	}
	var seen []string
	for _, tc := range []struct {
		name string
		key  []byte
	}{{"omitted", nil}, {"swapped", other}} {
		_, url := e.Proxy(r, func(_ int, dir hostileproxy.Direction, f *wire.Frame) []*wire.Frame {
			if en := f.GetResponse().GetEnroll(); en != nil && dir == hostileproxy.ToClient {
				en.LogPublicKey = tc.key
			}
			return []*wire.Frame{f}
		})
		_, err := e.EnrollVia(ctx, r, "erin-"+tc.name, url, false)
		if !errors.Is(err, client.ErrLogKeyMismatch) {
			return through("enrollment with the log key %s: %v", tc.name, err), nil
		}
		seen = append(seen, tc.name)
	}
	return stopped("enrollment stopped with the log key %v: %v", seen, client.ErrLogKeyMismatch), nil
}

// signed is the encoding of an org document the relay fans out.
func signed(key ed25519.PrivateKey, kind wire.OrgDocumentKind, body proto.Message) ([]byte, error) {
	doc, err := org.Sign(key, kind, body)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(doc)
}

func runForgedOrgDocs(ctx context.Context, e *Env, _ bool) (Outcome, error) {
	r, m, err := e.World(ctx, RelayOptions{}, []string{"bob"})
	if err != nil {
		return Outcome{}, err
	}
	bob := m["bob"]
	opPub, opKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Outcome{}, err
	}
	if err := r.Store.SetOrgKey(ctx, opPub); err != nil {
		return Outcome{}, err
	}
	devs, err := r.devices(ctx, "bob")
	if err != nil {
		return Outcome{}, err
	}
	now := time.Now()
	docs := []struct {
		kind wire.OrgDocumentKind
		body proto.Message
	}{
		{wire.OrgDocumentKind_ORG_NOTICE, &org.Notice{Seq: uint64(now.UnixMicro()), IssuedMs: now.UnixMilli(), Text: "install the update from evil.example"}},
		{wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 99, IssuedMs: now.UnixMilli(), CallsDisabled: true}},
		{wire.OrgDocumentKind_ORG_WIPE, &org.WipeOrder{Username: "bob", DeviceId: devs[0].id, RegistrationId: devs[0].reg,
			IdentityKey: bob.IdentityKey(), Nonce: randomID(), IssuedMs: now.UnixMilli(), ExpiresMs: now.Add(time.Hour).UnixMilli()}},
	}
	bob.Disconnect()
	for _, d := range docs {
		content, err := signed(opKey, d.kind, d.body)
		if err != nil {
			return Outcome{}, err
		}
		if err := r.Plant(ctx, "bob", "admin", wire.EnvelopeType_ORG_DOCUMENT, content); err != nil {
			return Outcome{}, err
		}
	}
	if err := bob.Connect(ctx, client.ConnectOptions{Receive: true}); err != nil {
		return Outcome{}, err
	}
	var rejected []error
	for range docs {
		ev, err := bob.WaitEvent(ctx, 0, func(ev client.Event) bool { return isOrgEvent(ev) || ev.Kind == client.EventWiped })
		if err != nil {
			break
		}
		if ev.Kind == client.EventWiped {
			return through("bob's device wiped itself on the operator's order"), nil
		}
		if ev.Kind == client.EventOrgRejected {
			rejected = append(rejected, ev.Err)
		}
	}
	select {
	case <-bob.Done():
		return through("bob's client stopped: wiped on the operator's order"), nil
	default:
	}
	if n, _ := bob.Notices(ctx); len(n) != 0 {
		return through("the operator's notice is shown"), nil
	}
	if p, _ := bob.OrgPolicy(ctx); p != nil {
		return through("the operator's policy applies"), nil
	}
	if _, err := bob.History(ctx, "alice", 1); err != nil {
		return through("bob's store is gone: %v", err), nil
	}
	for _, err := range rejected {
		if !errors.Is(err, org.ErrBadSignature) {
			return through("a forged document was dropped for another reason: %v", err), nil
		}
	}
	if len(rejected) != len(docs) {
		return Outcome{}, fmt.Errorf("%d of %d forged documents refused, none applied", len(rejected), len(docs))
	}
	return stopped("wipe, notice and policy signed with the operator's key: all three refused (%v); bob's store intact", org.ErrBadSignature), nil
}

// isOrgEvent matches an org document refused, a notice shown or a policy
// applied (with WaitEvent's kind 0).
func isOrgEvent(ev client.Event) bool {
	return ev.Kind == client.EventOrgRejected || ev.Kind == client.EventOrgNotice || ev.Kind == client.EventOrgPolicy
}

// floors sets the org-document floors of the invitations r mints: those
// of an admin client whose newest notice is notice and whose policy in
// force is policy (zero with the defence off).
func floors(r *Relay, notice, policy uint64, on bool) {
	if !on {
		return
	}
	r.Mint = func(p *org.MintParams) { p.NoticeSeq, p.PolicyVersion = notice, policy }
}

func runReplayedNotice(ctx context.Context, e *Env, on bool) (Outcome, error) {
	r, err := e.StartRelay(ctx, RelayOptions{})
	if err != nil {
		return Outcome{}, err
	}
	now := time.Now()
	seq := uint64(now.Add(-time.Hour).UnixMicro())
	old, err := signed(r.Org.Key, wire.OrgDocumentKind_ORG_NOTICE, &org.Notice{Seq: seq, IssuedMs: now.Add(-time.Hour).UnixMilli(), Text: "the office is closed today"})
	if err != nil {
		return Outcome{}, err
	}
	floors(r, seq, 0, on)
	carol, err := e.Enroll(ctx, r, "carol", true)
	if err != nil {
		return Outcome{}, err
	}
	carol.Disconnect()
	if err := r.Plant(ctx, "carol", "admin", wire.EnvelopeType_ORG_DOCUMENT, old); err != nil {
		return Outcome{}, err
	}
	if err := carol.Connect(ctx, client.ConnectOptions{Receive: true}); err != nil {
		return Outcome{}, err
	}
	ev, err := carol.WaitEvent(ctx, 0, isOrgEvent)
	if err != nil {
		return Outcome{}, err
	}
	if n, _ := carol.Notices(ctx); len(n) > 0 {
		return through("the old notice is shown as new: %q", n[0].Text), nil
	}
	if errors.Is(ev.Err, org.ErrStale) {
		return stopped("an hour-old notice planted in a new member's mailbox: %v", ev.Err), nil
	}
	return Outcome{}, fmt.Errorf("the old notice was neither refused as stale nor shown")
}

func runRolledBackPolicy(ctx context.Context, e *Env, on bool) (Outcome, error) {
	r, err := e.StartRelay(ctx, RelayOptions{})
	if err != nil {
		return Outcome{}, err
	}
	old, err := signed(r.Org.Key, wire.OrgDocumentKind_ORG_POLICY, &org.Policy{Version: 1, IssuedMs: time.Now().UnixMilli(), FailedUnlockLimit: 50})
	if err != nil {
		return Outcome{}, err
	}
	if err := r.Store.PutOrgDocument(ctx, wire.OrgDocumentKind_ORG_POLICY, "", old); err != nil {
		return Outcome{}, err
	}
	floors(r, 0, 2, on)
	carol, err := e.Enroll(ctx, r, "carol", true)
	if err != nil {
		return Outcome{}, err
	}
	ev, err := carol.WaitEvent(ctx, 0, isOrgEvent)
	if err != nil {
		return Outcome{}, err
	}
	if p, _ := carol.OrgPolicy(ctx); p != nil {
		return through("the old policy applies (version %d, %d failed unlocks)", p.Version, p.FailedUnlockLimit), nil
	}
	if errors.Is(ev.Err, org.ErrStale) {
		return stopped("policy version 1 served to a device invited under version 2: %v", ev.Err), nil
	}
	return Outcome{}, fmt.Errorf("the old policy was neither refused as stale nor applied")
}
