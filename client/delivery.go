package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"sotto/client/org"
	"sotto/client/transport"
	"sotto/wire"
)

// What the admin sees is what happened. Each device that applies an
// organization document pushed to it sends a receipt signed with its device
// key (a wipe order's signed confirmation counts as its receipt); the admin's
// device keeps a record of what it published and asks the relay how far
// each got, checking every receipt's signature. "Queued for 12 devices" is
// what the relay did; "applied by 11 of 12" is what the devices did.

const tblOrgPublished = "org-published" // by time and hash: publishedRecord

// publishedRecord is what the admin's device keeps of a document it published.
type publishedRecord struct {
	Kind   string    `json:"kind"`
	Hash   []byte    `json:"hash"`
	Queued int       `json:"queued"`
	At     time.Time `json:"at"`
	User   string    `json:"user,omitempty"`
	Device uint32    `json:"device,omitempty"`
}

// Delivery is how far one published document got.
type Delivery struct {
	ID     string    `json:"id"` // hex of the document hash
	Kind   string    `json:"kind"`
	At     time.Time `json:"at"`
	User   string    `json:"user,omitempty"`   // a wipe order's target
	Device uint32    `json:"device,omitempty"` // a wipe order's target
	Queued int       `json:"queued"`
	// Applied lists the devices whose signed receipt verified, as
	// "user.device".
	Applied []string `json:"applied"`
	// Bad counts receipts whose signature did not verify (a relay's
	// invention): they are not counted as applied.
	Bad int `json:"bad,omitempty"`
}

func (c *Client) notePublished(ctx context.Context, kind wire.OrgDocumentKind, body []byte, queued int, user string, device uint32) {
	h := sha256.Sum256(body)
	now := c.opts.Now()
	rec := publishedRecord{Kind: kindName(kind), Hash: h[:], Queued: queued, At: now, User: user, Device: device}
	b, _ := json.Marshal(rec)
	key := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
	if err := c.db.Put(ctx, tblOrgPublished, append(key, h[:8]...), b); err != nil {
		c.log.Warn("keeping the record of a published document", "err", err)
	}
}

func kindName(k wire.OrgDocumentKind) string {
	switch k {
	case wire.OrgDocumentKind_ORG_NOTICE:
		return "notice"
	case wire.OrgDocumentKind_ORG_POLICY:
		return "policy"
	case wire.OrgDocumentKind_ORG_WIPE:
		return "wipe"
	case wire.OrgDocumentKind_ORG_CERTIFICATE:
		return "certificate"
	case wire.OrgDocumentKind_ORG_MEMBER_ACCESS:
		return "member access"
	case wire.OrgDocumentKind_ORG_RELEASE_APPROVAL:
		return "release approval"
	}
	return k.String()
}

// Deliveries reports, newest first, how far the last limit documents this
// device published got (connection needed).
func (c *Client) Deliveries(ctx context.Context, limit int) ([]Delivery, error) {
	ents, err := c.db.List(ctx, tblOrgPublished)
	if err != nil {
		return nil, err
	}
	slices.Reverse(ents)
	ents = ents[:min(len(ents), limit)]
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	priv, err := c.adminKey(ctx)
	if err != nil {
		return nil, err
	}
	defer clear(priv)
	out := make([]Delivery, 0, len(ents))
	for _, e := range ents {
		var rec publishedRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return nil, fmt.Errorf("client: stored publication: %w", err)
		}
		d, err := delivery(ctx, conn, priv, &rec, c.opts.Now())
		if err != nil {
			return nil, err
		}
		out = append(out, *d)
	}
	return out, nil
}

// delivery asks the relay about one published document and checks the
// receipts.
func delivery(ctx context.Context, conn *transport.Conn, priv ed25519.PrivateKey, rec *publishedRecord, now time.Time) (*Delivery, error) {
	d := &Delivery{ID: hex.EncodeToString(rec.Hash), Kind: rec.Kind, At: rec.At, User: rec.User, Device: rec.Device,
		Queued: rec.Queued, Applied: []string{}}
	at := now.UnixMilli()
	resp, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgDelivery{OrgDelivery: &wire.OrgDeliveryRequest{DocumentHash: rec.Hash,
		AtMs: at, Signature: ed25519.Sign(priv, org.DeliveryQueryMessage(rec.Hash, at))}}})
	if err != nil {
		return nil, fmt.Errorf("client: delivery of %s: %w", d.ID[:16], err)
	}
	domain := org.ReceiptDomain
	if rec.Kind == "wipe" {
		domain = org.WipeConfirmDomain
	}
	msg := append([]byte(domain), rec.Hash...)
	for _, r := range resp.GetOrgDelivery().GetReceipts() {
		if len(r.DeviceKey) != ed25519.PublicKeySize || !ed25519.Verify(r.DeviceKey, msg, r.Signature) {
			d.Bad++
			continue
		}
		d.Applied = append(d.Applied, fmt.Sprintf("%s.%d", r.Username, r.DeviceId))
	}
	return d, nil
}

// sendReceipt tells the relay, signed with the device key, that this
// device applied the org document with body body.
func (c *Client) sendOrgReceipt(ctx context.Context, conn *transport.Conn, body []byte) {
	msg, hash := org.ReceiptMessage(body)
	c.cryptoMu.Lock()
	sig := ed25519.Sign(c.acct.PrivateDeviceKey(), msg)
	c.cryptoMu.Unlock()
	if _, err := conn.Do(ctx, &wire.Request{Body: &wire.Request_OrgReceipt{OrgReceipt: &wire.OrgReceiptRequest{
		DocumentHash: hash, Signature: sig}}}); err != nil {
		c.log.Info("organization document receipt not sent", "err", err)
	}
}
