package relay

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// How far an organization document got. The relay counts the devices it
// queued a published document for, and keeps each device's signed receipt
// (or, for a wipe order, its signed confirmation), so that the admin sees
// how many devices applied it rather than how many it was queued for. The
// admin's client checks every signature against the device key the relay
// registered; a relay can still invent devices (it registers their keys),
// so a receipt proves delivery only as far as the relay's directory is
// honest — what it cannot do is turn "queued" into "done" for a real
// device without that device's key.

// orgReceiptDomain prefixes the document hash in a device's receipt.
const orgReceiptDomain = "sotto/org receipt v1\x00"

// orgDeliveryDomain prefixes an admin's signed delivery query.
const orgDeliveryDomain = "sotto/org delivery v1\x00"

// deliveryQuerySkew bounds how far a delivery query's time may be from
// the relay's clock.
const deliveryQuerySkew = 5 * time.Minute

// DeliveryQueryMessage is what the org key signs to ask how far a
// document got.
func DeliveryQueryMessage(hash []byte, atMs int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(orgDeliveryDomain), hash...), uint64(atMs))
}

// OrgDocumentLister is implemented by directories that can list the org
// documents of a kind by subject prefix (receipts of one document).
type OrgDocumentLister interface {
	OrgDocumentsWithPrefix(ctx context.Context, kind wire.OrgDocumentKind, prefix string) ([][]byte, error)
}

const maxReceiptsListed = 100000

// notePublished records how many devices a document was queued for.
func (s *Server) notePublished(ctx context.Context, body []byte, queued int) error {
	ds, ok := s.dir.(OrgDocumentStore)
	if !ok {
		return nil
	}
	h := sha256.Sum256(body)
	return ds.PutOrgDocument(ctx, wire.OrgDocumentKind_RELAY_PUBLISHED, hex.EncodeToString(h[:]), binary.BigEndian.AppendUint32(nil, uint32(queued)))
}

func receiptSubject(hash []byte, dev DeviceAddr) string {
	return fmt.Sprintf("%x/%s/%d", hash, dev.Account.String(), dev.Device)
}

// keepReceipt stores a device's signed receipt for the document hash.
func (s *Server) keepReceipt(ctx context.Context, dev DeviceAddr, username string, hash, sig, deviceKey []byte) error {
	ds, ok := s.dir.(OrgDocumentStore)
	if !ok {
		return nil
	}
	b, err := proto.Marshal(&wire.OrgReceipt{Username: username, DeviceId: dev.Device, AtMs: s.cfg.Now().UnixMilli(),
		Signature: sig, DeviceKey: deviceKey})
	if err != nil {
		return fmt.Errorf("relay: encode receipt: %w", err)
	}
	return ds.PutOrgDocument(ctx, wire.OrgDocumentKind_RELAY_RECEIPT, receiptSubject(hash, dev), b)
}

// orgReceipt checks and keeps a device's receipt for a published document.
func (c *conn) orgReceipt(r *wire.OrgReceiptRequest) error {
	if len(r.GetDocumentHash()) != 32 || len(r.GetSignature()) != ed25519.SignatureSize {
		return badRequest("bad receipt")
	}
	ds, ok := c.s.dir.(OrgDocumentStore)
	if !ok {
		return ErrNotFound
	}
	if _, err := ds.OrgDocument(c.ctx, wire.OrgDocumentKind_RELAY_PUBLISHED, hex.EncodeToString(r.DocumentHash)); err != nil {
		return err // ErrNotFound: no such published document
	}
	dev, err := c.s.dir.Device(c.ctx, c.dev)
	if err != nil {
		return err
	}
	if !ed25519.Verify(dev.DeviceKey, append([]byte(orgReceiptDomain), r.DocumentHash...), r.Signature) {
		return ErrBadSignature
	}
	return c.s.keepReceipt(c.ctx, c.dev, c.username, r.DocumentHash, r.Signature, dev.DeviceKey)
}

// orgDelivery reports a published document's queue count and receipts to
// an admin (the query is signed with the org key).
func (s *Server) orgDelivery(ctx context.Context, r *wire.OrgDeliveryRequest) (*wire.OrgDeliveryResponse, error) {
	hash := r.GetDocumentHash()
	if len(hash) != 32 || len(r.GetSignature()) != ed25519.SignatureSize {
		return nil, badRequest("bad delivery query")
	}
	key, err := s.orgKey(ctx)
	if err != nil {
		return nil, err
	}
	at := time.UnixMilli(r.AtMs)
	if d := s.cfg.Now().Sub(at); d > deliveryQuerySkew || d < -deliveryQuerySkew {
		return nil, badRequest("delivery query too old or from the future")
	}
	if !ed25519.Verify(key, DeliveryQueryMessage(hash, r.AtMs), r.Signature) {
		return nil, withReason(ErrForbidden, "a delivery query is signed by the organization key")
	}
	ds, ok := s.dir.(OrgDocumentStore)
	lister, ok2 := s.dir.(OrgDocumentLister)
	if !ok || !ok2 {
		return nil, ErrNotFound
	}
	q, err := ds.OrgDocument(ctx, wire.OrgDocumentKind_RELAY_PUBLISHED, hex.EncodeToString(hash))
	if err != nil {
		return nil, err
	}
	if len(q) != 4 {
		return nil, errors.New("relay: stored queue count malformed")
	}
	rs, err := lister.OrgDocumentsWithPrefix(ctx, wire.OrgDocumentKind_RELAY_RECEIPT, hex.EncodeToString(hash)+"/")
	if err != nil {
		return nil, err
	}
	out := &wire.OrgDeliveryResponse{Queued: binary.BigEndian.Uint32(q)}
	for _, b := range rs[:min(len(rs), maxReceiptsListed)] {
		var r wire.OrgReceipt
		if err := proto.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("relay: stored receipt: %w", err)
		}
		out.Receipts = append(out.Receipts, &r)
	}
	return out, nil
}
