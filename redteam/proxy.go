package redteam

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"sotto/client"
	"sotto/internal/hostileproxy"
	"sotto/relay"
	"sotto/wire"
)

// A hostile relay: its operator rewrites, drops, replays and injects
// frames (internal/hostileproxy in front of the relay) and writes to its
// mailbox behind its back.

// Proxy puts a hostile proxy in front of r; members enrolled through its
// URL (EnrollVia) talk to the relay only through it.
func (e *Env) Proxy(r *Relay, rule hostileproxy.Rule) (*hostileproxy.Proxy, string) {
	p := hostileproxy.New(r.HTTP, rule)
	hs := httptest.NewServer(p)
	e.OnClose(func() { p.Close(); hs.Close() })
	return p, "ws://" + strings.TrimPrefix(hs.URL, "http://")
}

// EnrollVia enrolls user through the relay URL url (a proxy's).
func (e *Env) EnrollVia(ctx context.Context, r *Relay, user, url string, receive bool) (*Member, error) {
	events := make(chan client.Event, 256)
	return e.EnrollWith(ctx, r, user, url, receive, MemberOptions(events), events)
}

// Plant stores an envelope for every device of user straight into the
// relay's mailbox, as its operator can, naming sender; devices see it on
// their next connection.
func (r *Relay) Plant(ctx context.Context, user, sender string, typ wire.EnvelopeType, content []byte) error {
	acct, err := r.Store.AccountByName(ctx, user)
	if err != nil {
		return err
	}
	devs, err := r.devices(ctx, user)
	if err != nil {
		return err
	}
	now := time.Now()
	send := &relay.Send{Sender: relay.DeviceAddr{Device: 1}, MessageID: randomID(), Timestamp: now}
	for _, d := range devs {
		var id relay.EnvelopeID
		copy(id[:], randomID())
		send.Envelopes = append(send.Envelopes, relay.Envelope{ID: id, Recipient: relay.DeviceAddr{Account: acct.ID, Device: d.id},
			Sender: sender, SenderDevice: 1, Timestamp: now, Type: uint32(typ), Content: content, MessageID: send.MessageID})
	}
	_, err = r.Store.Append(ctx, send)
	return err
}

type deviceRow struct{ id, reg uint32 }

// devices reads user's devices from the relay's database.
func (r *Relay) devices(ctx context.Context, user string) ([]deviceRow, error) {
	db, err := r.DB()
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT d.device, d.registration_id FROM devices d JOIN accounts a ON a.id = d.account
		WHERE a.username = ? AND d.revoked = 0`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []deviceRow
	for rows.Next() {
		var d deviceRow
		if err := rows.Scan(&d.id, &d.reg); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no device of %s", user)
	}
	return out, rows.Err()
}

// Reconnect makes m fetch what waits for it.
func (m *Member) Reconnect(ctx context.Context) error {
	m.Disconnect()
	return m.Connect(ctx, client.ConnectOptions{Receive: true})
}

// Seen reports whether m has shown a message with text from user, after
// waiting for a later sentinel message from user: the sender sends the
// sentinel after the attack, and m's events are read up to it.
func (m *Member) countUntil(ctx context.Context, text, sentinel string) (int, error) {
	n := 0
	for {
		ev, err := m.WaitEvent(ctx, client.EventMessage, nil)
		if err != nil {
			return n, err
		}
		switch Text(ev) {
		case text:
			n++
		case sentinel:
			return n, nil
		}
	}
}
