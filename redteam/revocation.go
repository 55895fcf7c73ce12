package redteam

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"sotto/client"
)

// A revocation on an account with linked devices: a sibling that has not
// heard of it must not undo it, and a device linked later must keep it.

func revokedLinkedAttack() Attack {
	return Attack{
		Name: "revoked-contact-linked",
		Threat: "alice revokes mallory on her first device while her phone is offline; the phone, " +
			"still holding the older profile key, connects and writes to mallory (re-uploading the older access key without the refusal of the member key), " +
			"and a tablet linked afterwards writes to her too: mallory's sealed sends must stay refused and she must never get the new key",
		Defence: "the profile key state (epoch, revocations) goes to the account's other devices with every message to them and in the link approval " +
			"(client/sealedsender/state.go); the relay refuses an access key of a lower epoch than it holds (relay/memberrefuse.go); " +
			"a device that receives a sealed message from a revoked contact uploads its key again",
		Switch: "no revocation",
		Run:    runRevokedLinked,
	}
}

// link links a new device to m's account and connects it.
func (e *Env) link(ctx context.Context, r *Relay, m *Member, receive bool) (*Member, error) {
	l, err := client.BeginLink(ctx, r.WS)
	if err != nil {
		return nil, err
	}
	if err := m.ApproveLink(ctx, l.Code()); err != nil {
		l.Close()
		return nil, err
	}
	dir, err := e.Dir()
	if err != nil {
		return nil, err
	}
	events := make(chan client.Event, 256)
	c, err := l.Finish(ctx, filepath.Join(dir, "linked"), []byte("red team"), "device", MemberOptions(events))
	if err != nil {
		return nil, err
	}
	e.OnClose(func() { c.Close() })
	if err := c.Connect(ctx, client.ConnectOptions{Receive: receive}); err != nil {
		return nil, err
	}
	return &Member{Client: c, Events: events}, nil
}

// refusedSealed reports whether mallory's sealed send to alice is refused.
func refusedSealed(ctx context.Context, mallory *Member, text string) (bool, error) {
	_, err := mallory.Send(ctx, "alice", text)
	if errors.Is(err, client.ErrSealedRefused) {
		return true, nil
	}
	return false, err
}

func runRevokedLinked(ctx context.Context, e *Env, on bool) (Outcome, error) {
	r, m, err := e.World(ctx, RelayOptions{MemberAccess: true}, []string{"alice", "bob", "mallory"})
	if err != nil {
		return Outcome{}, err
	}
	alice, bob, mallory := m["alice"], m["bob"], m["mallory"]
	for _, other := range []*Member{bob, mallory} {
		if err := acquainted(ctx, alice, other); err != nil {
			return Outcome{}, err
		}
	}
	phone, err := e.link(ctx, r, alice, true)
	if err != nil {
		return Outcome{}, err
	}
	phone.Disconnect() // offline while alice revokes
	if on {
		if err := alice.RevokeContact(ctx, "mallory"); err != nil {
			return Outcome{}, err
		}
	}
	// The phone connects only to send (as `sotto send` does): it uploads
	// the key it holds, the older one, and writes to mallory, before it
	// has read anything.
	if err := phone.Connect(ctx, client.ConnectOptions{}); err != nil {
		return Outcome{}, err
	}
	if _, err := phone.Send(ctx, "mallory", "from alice's phone"); err != nil {
		return Outcome{}, err
	}
	if refused, err := refusedSealed(ctx, mallory, "the phone let me back in?"); err != nil {
		return Outcome{}, err
	} else if !refused {
		return through("mallory's sealed send got through after alice's phone, which had not heard of the revocation, connected and wrote to her"), nil
	}
	// The phone reads its mailbox: it learns the revocation.
	phone.Disconnect()
	if err := phone.Connect(ctx, client.ConnectOptions{Receive: true}); err != nil {
		return Outcome{}, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ok, err := phone.Revoked(ctx, "mallory"); err != nil {
			return Outcome{}, err
		} else if ok {
			break
		}
		if time.Now().After(deadline) {
			return through("alice's phone never learned that mallory is revoked (it would give her the new key)"), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	tablet, err := e.link(ctx, r, alice, true)
	if err != nil {
		return Outcome{}, err
	}
	if ok, err := tablet.Revoked(ctx, "mallory"); err != nil || !ok {
		return through("a tablet linked after the revocation does not know of it (%v)", err), nil
	}
	for _, d := range []*Member{phone, tablet} {
		if _, err := d.Send(ctx, "mallory", "from another device of alice's"); err != nil {
			return Outcome{}, err
		}
		if _, err := mallory.WaitEvent(ctx, client.EventMessage, func(ev client.Event) bool { return Text(ev) == "from another device of alice's" }); err != nil {
			return Outcome{}, err
		}
	}
	if refused, err := refusedSealed(ctx, mallory, "and now?"); err != nil {
		return Outcome{}, err
	} else if !refused {
		return through("mallory's sealed send got through after alice's phone and tablet wrote to her"), nil
	}
	// Bob, not revoked, still reaches alice sealed once a sibling wrote.
	if _, err := tablet.Send(ctx, "bob", "alice's key changed"); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.WaitEvent(ctx, client.EventMessage, func(ev client.Event) bool { return Text(ev) == "alice's key changed" }); err != nil {
		return Outcome{}, err
	}
	if _, err := bob.Send(ctx, "alice", "still friends"); err != nil {
		return through("mallory is refused, but so is bob: %v", err), nil
	}
	return stopped("the offline phone's upload of the older key was refused (older epoch), it learned the revocation from alice's first device, "+
		"the tablet got it in the link approval; mallory stayed refused (%v), bob reaches alice sealed", client.ErrSealedRefused), nil
}
