package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"sotto/client/content"
	"sotto/client/sessions"
	"sotto/client/store"
	"sotto/client/transport"
	"sotto/signal/sealed"
	"sotto/signal/session"
	"sotto/wire"
)

// maxSendAttempts bounds the retries after STALE_DEVICES answers.
const maxSendAttempts = 4

// Send sends text to user (every device of theirs) and a transcript of it
// to this account's other devices. It returns the stored message.
func (c *Client) Send(ctx context.Context, user, text string) (*Message, error) {
	return c.SendText(ctx, user, text, nil)
}

// MarkRead records that user's messages ids were read, tells the own other
// devices (so they too show them read) and, unless read receipts are off
// (Settings), queues a read receipt for user, sent after a random delay
// with the others pending for user (receipts.go).
func (c *Client) MarkRead(ctx context.Context, user string, ids ...[]byte) error {
	user = normalize(user)
	if len(ids) == 0 {
		return nil
	}
	if err := c.markSeen(ctx, user, ids); err != nil {
		return err
	}
	c.syncRead(ctx, user, ids)
	if s, err := c.Settings(ctx); err != nil || !s.ReadReceipts {
		return err
	}
	c.queueReceipt(user, true, ids...)
	return nil
}

// sendContent encrypts ct once per device of to (for the own account: per
// other device) and hands the ciphertexts to the relay, updating the device
// list when the relay says it is stale. relayID makes retries idempotent.
func (c *Client) sendContent(ctx context.Context, to string, ct *content.Content, relayID []byte) (int64, error) {
	if rec, err := loadIdentity(ctx, c.db, to); err != nil {
		return 0, err
	} else if rec != nil && rec.Changed {
		return 0, &IdentityChangedError{User: to}
	}
	conn, err := c.connection()
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	expired := c.expired
	c.mu.Unlock()
	if expired {
		return 0, ErrExpired
	}
	if err := c.versionAllowsSending(ctx); err != nil {
		return 0, err // releases.go: below the organization's minimum version
	}
	withKey, err := c.sealed.Attach(ctx, conn, to, ct)
	if err != nil {
		return 0, err
	}
	c.keylog.AttachHead(ctx, c.relay, to, ct)
	pt, err := content.Encode(ct)
	if err != nil {
		return 0, err
	}
	// A send that should go sealed never goes out naming its sender
	// unless the user allows it and the organization does not forbid it:
	// after a refusal (no certificate, or UNAUTHENTICATED) it is tried
	// once more with a fresh certificate and connection, then refused
	// with ErrSealedRefused or, if allowed, sent authenticated and counted.
	accessKey, cert, refusal := c.sealed.Route(ctx, conn, to)
	retried, downgraded := false, false
	if refusal != nil {
		retried = true
		if accessKey, cert, err = c.refreshSealed(ctx, conn, to, nil); err != nil {
			if ferr := c.mayFallback(ctx, to, err); ferr != nil {
				return 0, ferr
			}
			downgraded = true
		}
	}
	self := to == c.acct.Username
	devices, known, err := sessions.Devices(ctx, c.db, to)
	if err != nil {
		return 0, err
	}
	if !known || (self && len(devices) == 0 && !c.ownDevicesChecked(conn)) {
		if devices, err = c.refreshDevices(ctx, conn, to); err != nil {
			return 0, err
		}
	}
	for range maxSendAttempts {
		if len(devices) == 0 {
			return 0, ErrNoDevices
		}
		msgs, err := c.encryptFor(ctx, conn, to, devices, pt, cert)
		if err != nil {
			return 0, err
		}
		var resp *wire.SendMessageResponse
		if cert != nil {
			resp, err = c.sealed.Send(ctx, &wire.SealedSendRequest{Recipient: to, Messages: msgs, MessageId: relayID, AccessKey: accessKey})
			if transport.Code(err) == wire.ErrorCode_UNAUTHENTICATED {
				// The contact's profile key changed, its access key at the
				// relay was lost or altered, or the relay wants to see who
				// sends. The contact's key is kept (a new one from the
				// contact replaces it), so one refusal is not sticky.
				if !retried {
					retried = true
					if accessKey, cert, err = c.refreshSealed(ctx, conn, to, accessKey); err == nil {
						continue
					}
				}
				if ferr := c.mayFallback(ctx, to, err); ferr != nil {
					return 0, ferr
				}
				cert, downgraded = nil, true
				continue
			}
		} else {
			resp, err = conn.SendMessage(ctx, &wire.SendMessageRequest{Recipient: to, Messages: msgs, MessageId: relayID})
		}
		var te *transport.Error
		if errors.As(err, &te) && te.Code == wire.ErrorCode_STALE_DEVICES && te.Stale != nil {
			if devices, err = c.applyStale(ctx, to, devices, te.Stale); err != nil {
				return 0, err
			}
			continue
		}
		if err != nil {
			switch transport.Code(err) {
			case wire.ErrorCode_SUBSCRIPTION_EXPIRED:
				c.mu.Lock()
				c.expired = true
				c.mu.Unlock()
				return 0, fmt.Errorf("%w (%w)", ErrExpired, err)
			case wire.ErrorCode_REVOKED:
				return 0, fmt.Errorf("%w (%w)", ErrRevoked, err)
			}
			return 0, fmt.Errorf("client: send to %s: %w", to, err)
		}
		if withKey {
			c.sealed.Delivered(ctx, to)
		}
		if downgraded {
			c.noteDowngrade(ctx, to)
		}
		return resp.ServerTimestampMs, nil
	}
	return 0, fmt.Errorf("client: send to %s: device list still stale after %d attempts", to, maxSendAttempts)
}

// self is this device, as the device lists (client/sessions) know it.
func (c *Client) self() sessions.Self {
	return sessions.Self{User: c.acct.Username, Device: c.acct.DeviceID}
}

// ownDevicesChecked reports whether the account's own device list was
// fetched on conn. An empty own list (a single-device account) is fetched
// once per connection, not on every send: a device linked from this one
// drops the list (enroll.go), one that sends anything is added to it
// (rememberDevice), and a relay's stale-device answer replaces it
// (applyStale).
func (c *Client) ownDevicesChecked(conn *transport.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownDevicesOn == conn
}

// refreshDevices asks the relay for to's devices and caches the answer.
func (c *Client) refreshDevices(ctx context.Context, conn *transport.Conn, to string) ([]uint32, error) {
	if c.hooks.getDevices != nil {
		c.hooks.getDevices()
	}
	list, err := conn.GetDevices(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("client: devices of %s: %w", to, err)
	}
	if to == c.acct.Username {
		c.mu.Lock()
		c.ownDevicesOn = conn
		c.mu.Unlock()
	}
	ids := sessions.FromRelay(c.self(), to, list.Devices)
	return ids, sessions.Save(ctx, c.db, to, ids)
}

// applyStale updates the device list and sessions after STALE_DEVICES:
// sessions of removed devices and of re-registered ones are dropped, new
// devices get fresh bundles on the next attempt.
func (c *Client) applyStale(ctx context.Context, to string, devices []uint32, st *wire.StaleDevices) ([]uint32, error) {
	c.cryptoMu.Lock()
	defer c.cryptoMu.Unlock()
	ss := c.sigStores(c.db)
	for _, id := range sessions.StaleSessions(st) {
		if err := ss.deleteSession(ctx, session.Address{Name: to, DeviceID: id}); err != nil {
			return nil, err
		}
	}
	ids := sessions.AfterStale(c.self(), to, devices, st)
	c.log.Debug("device list was stale", "user", to, "missing", st.Missing, "extra", st.Extra, "mismatched", st.Mismatched)
	return ids, sessions.Save(ctx, c.db, to, ids)
}

// errNeedBundle rolls encryptFor's transaction back when a device lost its
// session after the bundles were fetched: they are fetched again, outside.
var errNeedBundle = errors.New("client: a device needs a prekey bundle")

// fetchedBundle is a device's prekey bundle, fetched and its identity key
// checked before encryptFor's transaction; gone: the relay has no such
// device.
type fetchedBundle struct {
	resp *wire.FetchPreKeysResponse
	gone bool
}

// encryptFor starts sessions where needed and encrypts pt for each device.
// The bundles of devices without a session are fetched, and their identity
// keys checked against the key log, first (fetchBundles): no relay request
// waits inside the store transaction or under the crypto lock. The
// encryption runs in one store transaction, so that another process using
// the same store cannot interleave its own session updates.
// With cert, each ciphertext is sealed (sealed sender) under it.
func (c *Client) encryptFor(ctx context.Context, conn *transport.Conn, to string, devices []uint32, pt []byte, cert *sealed.SenderCertificate) ([]*wire.OutgoingMessage, error) {
	bundles := make(map[uint32]fetchedBundle)
	for range 3 {
		if err := c.fetchBundles(ctx, conn, to, devices, bundles); err != nil {
			return nil, err
		}
		msgs, err := c.encryptWith(ctx, to, devices, bundles, pt, cert)
		if !errors.Is(err, errNeedBundle) {
			return msgs, err
		}
	}
	return nil, fmt.Errorf("client: send to %s: sessions kept being reset while encrypting", to)
}

// fetchBundles fetches, outside any transaction or lock, the prekey
// bundles of the devices that have no session and none in bundles yet,
// and checks each served identity key (key transparency, org certificate).
func (c *Client) fetchBundles(ctx context.Context, conn *transport.Conn, to string, devices []uint32, bundles map[uint32]fetchedBundle) error {
	st := c.sigStores(c.db).stores()
	for _, id := range devices {
		if _, ok := bundles[id]; ok {
			continue
		}
		addr := session.Address{Name: to, DeviceID: id}
		switch ok, err := session.HasSession(ctx, st, addr); {
		case err != nil:
			return err
		case ok:
			continue
		}
		resp, err := conn.FetchPreKeys(ctx, addr.Name, addr.DeviceID)
		var te *transport.Error
		if errors.As(err, &te) && te.Code == wire.ErrorCode_NOT_FOUND {
			// Gone: let the relay's stale-device answer sort it out.
			bundles[id] = fetchedBundle{gone: true}
			continue
		}
		if err != nil {
			return fmt.Errorf("client: prekeys of %s: %w", addr, err)
		}
		err = c.keylog.CheckServedKey(ctx, conn, c.db, addr.Name, resp.IdentityKey, resp.IdentityCertificate, resp.Transparency)
		c.flushAlarms(ctx)
		if err != nil {
			return err
		}
		bundles[id] = fetchedBundle{resp: resp}
	}
	return nil
}

// encryptWith is encryptFor's transaction, under the crypto lock; a device
// without a session starts one with its bundle in bundles.
func (c *Client) encryptWith(ctx context.Context, to string, devices []uint32, bundles map[uint32]fetchedBundle, pt []byte, cert *sealed.SenderCertificate) ([]*wire.OutgoingMessage, error) {
	c.cryptoMu.Lock()
	defer c.cryptoMu.Unlock()
	var msgs []*wire.OutgoingMessage
	err := c.db.Update(ctx, func(tx *store.Tx) error {
		msgs = nil
		ss := c.sigStores(tx)
		st := ss.stores()
		now := c.opts.Now()
		for _, id := range devices {
			addr := session.Address{Name: to, DeviceID: id}
			ok, err := session.HasSession(ctx, st, addr)
			if err != nil {
				return err
			}
			if !ok {
				b, fetched := bundles[id]
				switch {
				case !fetched:
					return errNeedBundle // its session was reset meanwhile
				case b.gone:
					continue
				}
				delete(bundles, id) // used up: a later try fetches another
				if err := c.startSession(ctx, ss, addr, b.resp, now); err != nil {
					return err
				}
			}
			var typ int
			var ciphertext []byte
			if cert != nil {
				typ = wire.EnvelopeTypeSealed
				ciphertext, err = sealed.Encrypt(ctx, rand.Reader, st, addr, cert, pt, sealed.HintDefault, nil, now)
			} else {
				typ, ciphertext, err = session.Encrypt(ctx, st, addr, pt, now)
			}
			if errors.Is(err, session.ErrUntrustedIdentity) {
				return &IdentityChangedError{User: to}
			}
			if err != nil {
				return fmt.Errorf("client: encrypt for %s: %w", addr, err)
			}
			rec, err := ss.LoadSession(ctx, addr)
			if err != nil {
				return err
			}
			regID, _ := rec.RemoteRegistrationID()
			msgs = append(msgs, &wire.OutgoingMessage{DeviceId: id, RegistrationId: regID, Type: uint32(typ), Content: ciphertext})
		}
		return nil
	})
	var ice *IdentityChangedError
	if errors.As(err, &ice) && ice.key != nil {
		// Recorded outside the rolled-back transaction.
		if merr := c.markChanged(ctx, c.sigStores(c.db), ice.User, ice.key); merr != nil {
			return nil, merr
		}
	}
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// startSession runs PQXDH with addr's bundle, fetched and its identity key
// checked by fetchBundles.
func (c *Client) startSession(ctx context.Context, ss *sigStore, addr session.Address, resp *wire.FetchPreKeysResponse, now time.Time) error {
	var wb *wire.PreKeyBundle
	for _, b := range resp.Bundles {
		if b.DeviceId == addr.DeviceID {
			wb = b
		}
	}
	if wb == nil || wb.SignedPrekey == nil || wb.KyberPrekey == nil {
		return fmt.Errorf("client: prekeys of %s: incomplete bundle", addr)
	}
	b := &session.PreKeyBundle{
		RegistrationID:        wb.RegistrationId,
		DeviceID:              wb.DeviceId,
		SignedPreKeyID:        wb.SignedPrekey.Id,
		SignedPreKey:          wb.SignedPrekey.PublicKey,
		SignedPreKeySignature: wb.SignedPrekey.Signature,
		KyberPreKeyID:         wb.KyberPrekey.Id,
		KyberPreKey:           wb.KyberPrekey.PublicKey,
		KyberPreKeySignature:  wb.KyberPrekey.Signature,
		IdentityKey:           resp.IdentityKey,
	}
	if wb.OneTimePrekey != nil {
		b.HasPreKey, b.PreKeyID, b.PreKey = true, wb.OneTimePrekey.Id, wb.OneTimePrekey.PublicKey
	}
	ctxErr := session.ProcessPreKeyBundle(ctx, rand.Reader, ss.stores(), addr, b, now)
	if errors.Is(ctxErr, session.ErrUntrustedIdentity) {
		e := &IdentityChangedError{User: addr.Name}
		if addr.Name != c.acct.Username {
			e.key = resp.IdentityKey
		}
		return e
	}
	if ctxErr != nil {
		return fmt.Errorf("client: session with %s: %w", addr, ctxErr)
	}
	// Trust on first use: remember the key the session was built on.
	_, err := ss.SaveIdentity(ctx, addr, resp.IdentityKey)
	return err
}

// markChanged records a contact's new identity key as not yet accepted.
func (c *Client) markChanged(ctx context.Context, ss *sigStore, user string, key []byte) error {
	rec, err := loadIdentity(ctx, ss.db, user)
	if err != nil {
		return err
	}
	if rec == nil {
		rec = &identityRecord{}
	}
	if sameKey(rec.Key, key) && rec.Changed {
		return nil
	}
	if !sameKey(rec.Key, key) {
		rec.Previous, rec.Key = rec.Key, key
	}
	rec.Changed, rec.Verified = true, false
	if err := saveIdentity(ctx, ss.db, user, rec); err != nil {
		return err
	}
	c.emit(Event{Kind: EventIdentityChanged, User: user})
	return nil
}
