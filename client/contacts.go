package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"sotto/client/content"
	"sotto/client/sessions"
	"sotto/signal/fingerprint"
	"sotto/signal/session"
)

// Contact is someone this device has a session or an identity key for.
type Contact struct {
	User     string
	Verified bool // the user accepted the safety number
	Changed  bool // the identity key changed and was not accepted: sending is blocked
}

// Contacts lists the known contacts, sorted by name.
func (c *Client) Contacts(ctx context.Context) ([]Contact, error) {
	entries, err := c.db.List(ctx, tblIdentities)
	if err != nil {
		return nil, err
	}
	var out []Contact
	for _, e := range entries {
		r, err := loadIdentity(ctx, c.db, string(e.Key))
		if err != nil || r == nil {
			return nil, err
		}
		out = append(out, Contact{User: string(e.Key), Verified: r.Verified, Changed: r.Changed})
	}
	slices.SortFunc(out, func(a, b Contact) int { return strings.Compare(a.User, b.User) })
	return out, nil
}

// SafetyNumber is what two users compare to authenticate each other.
type SafetyNumber struct {
	User      string
	Digits    string // 60 digits
	Scannable []byte // libsignal's scannable form, for a QR code
	Verified  bool
	Changed   bool
}

// Groups returns the digits in 12 groups of 5, separated by spaces.
func (s *SafetyNumber) Groups() string {
	var g []string
	for i := 0; i+5 <= len(s.Digits); i += 5 {
		g = append(g, s.Digits[i:i+5])
	}
	return strings.Join(g, " ")
}

// SafetyNumber computes the safety number with user (Signal's numeric
// fingerprint, version 2, 5200 iterations, usernames as identifiers). When
// connected, the key the relay serves now is fetched first (see
// RefreshIdentity); otherwise the stored key is used.
func (c *Client) SafetyNumber(ctx context.Context, user string) (*SafetyNumber, error) {
	user = normalize(user)
	if _, err := c.connection(); err == nil {
		if err := c.RefreshIdentity(ctx, user); err != nil {
			return nil, err
		}
	}
	rec, err := loadIdentity(ctx, c.db, user)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("client: no identity key known for %s: %w", user, ErrNotConnected)
	}
	fp, err := fingerprint.New(fingerprint.Version, fingerprint.Iterations,
		[]byte(c.acct.Username), c.IdentityKey(), []byte(user), rec.Key)
	if err != nil {
		return nil, err
	}
	scan, err := fp.Scannable()
	if err != nil {
		return nil, err
	}
	return &SafetyNumber{User: user, Digits: fp.Displayable(), Scannable: scan, Verified: rec.Verified, Changed: rec.Changed}, nil
}

// RefreshIdentity fetches the identity key the relay serves for user
// (connection needed). A first key is remembered (trust on first use); a
// different key marks the contact changed, which blocks sending until
// Verify; while a change is pending, the newest key served replaces the
// pending one, so the user compares and accepts what the relay serves now.
func (c *Client) RefreshIdentity(ctx context.Context, user string) error {
	user = normalize(user)
	if user == c.acct.Username {
		return nil
	}
	conn, err := c.connection()
	if err != nil {
		return err
	}
	resp, err := conn.GetIdentity(ctx, user)
	if err != nil {
		return fmt.Errorf("client: identity of %s: %w", user, err)
	}
	if err := c.keylog.CheckServedKey(ctx, conn, c.db, user, resp.IdentityKey, resp.IdentityCertificate, resp.Transparency); err != nil {
		c.flushAlarms(ctx)
		return err
	}
	c.cryptoMu.Lock()
	defer c.cryptoMu.Unlock()
	rec, err := loadIdentity(ctx, c.db, user)
	switch {
	case err != nil:
		return err
	case rec == nil:
		return saveIdentity(ctx, c.db, user, &identityRecord{Key: resp.IdentityKey})
	case sameKey(rec.Key, resp.IdentityKey):
		return nil
	case rec.Changed:
		rec.Key = resp.IdentityKey
		return saveIdentity(ctx, c.db, user, rec)
	default:
		return c.markChanged(ctx, c.sigStores(c.db), user, resp.IdentityKey)
	}
}

// Verify marks user's current identity key as verified by the user (after
// comparing safety numbers) and, when it had changed, accepts it: sessions
// built on the old key are dropped and sending resumes.
func (c *Client) Verify(ctx context.Context, user string) error {
	return c.verifyKey(ctx, user, nil)
}

// verifyKey is Verify of the key want (nil: the one stored now); another
// key stored meanwhile fails with ErrKeyMoved.
func (c *Client) verifyKey(ctx context.Context, user string, want []byte) error {
	user = normalize(user)
	c.cryptoMu.Lock()
	defer c.cryptoMu.Unlock()
	rec, err := loadIdentity(ctx, c.db, user)
	if err != nil {
		return err
	}
	if rec == nil {
		return fmt.Errorf("client: no identity key known for %s", user)
	}
	if want != nil && !sameKey(rec.Key, want) {
		return ErrKeyMoved
	}
	sessions, err := c.db.List(ctx, tblSessions)
	if err != nil {
		return err
	}
	for _, e := range sessions {
		name, _, ok := strings.Cut(string(e.Key), "\x00")
		if !ok || name != user {
			continue
		}
		r, err := session.ParseRecord(e.Value)
		if err != nil {
			return err
		}
		if k, ok := r.RemoteIdentityKey(); ok && !sameKey(k, rec.Key) {
			if err := c.db.Delete(ctx, tblSessions, e.Key); err != nil {
				return err
			}
		}
	}
	rec.Verified, rec.Changed, rec.Previous = true, false, nil
	return saveIdentity(ctx, c.db, user, rec)
}

// Device is one device of the own account.
type Device struct {
	ID       uint32
	Name     string
	Created  time.Time
	LastSeen time.Time
	Current  bool // this device
}

// Devices lists the account's devices (connection needed).
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	conn, err := c.connection()
	if err != nil {
		return nil, err
	}
	list, err := conn.ListDevices(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: list devices: %w", err)
	}
	var out []Device
	var others []uint32
	for _, d := range list.Devices {
		out = append(out, Device{ID: d.DeviceId, Name: d.Name, Created: time.UnixMilli(d.CreatedMs),
			LastSeen: time.UnixMilli(d.LastSeenMs), Current: d.DeviceId == c.acct.DeviceID})
		if d.DeviceId != c.acct.DeviceID {
			others = append(others, d.DeviceId)
		}
	}
	return out, sessions.Save(ctx, c.db, c.acct.Username, others)
}

// WipeDevice orders one of the account's other devices to crypto-shred its
// store the next time it receives. The order travels end to end encrypted
// like a message; the relay only carries it. Revoke the device (RemoveDevice)
// once it has received the order: a revoked device can no longer fetch it.
func (c *Client) WipeDevice(ctx context.Context, id uint32) error {
	if id == c.acct.DeviceID {
		return fmt.Errorf("client: to wipe this device, use the local wipe")
	}
	conn, err := c.connection()
	if err != nil {
		return err
	}
	others, err := c.refreshDevices(ctx, conn, c.acct.Username)
	if err != nil {
		return err
	}
	if !slices.Contains(others, id) {
		return fmt.Errorf("client: no device %d on this account", id)
	}
	ct, err := content.NewWipeOrder(id, c.opts.Now())
	if err != nil {
		return err
	}
	ct.GetDeviceOrder().ExpiresMs = c.opts.Now().Add(deviceOrderValidity).UnixMilli()
	_, err = c.sendContent(ctx, c.acct.Username, ct, ct.Id)
	return err
}

// RemoveDevice revokes one of the account's other devices.
func (c *Client) RemoveDevice(ctx context.Context, id uint32) error {
	if id == c.acct.DeviceID {
		return fmt.Errorf("client: cannot remove this device from itself")
	}
	conn, err := c.connection()
	if err != nil {
		return err
	}
	if err := conn.RemoveDevice(ctx, id); err != nil {
		return fmt.Errorf("client: remove device %d: %w", id, err)
	}
	c.cryptoMu.Lock()
	defer c.cryptoMu.Unlock()
	if err := c.sigStores(c.db).deleteSession(ctx, session.Address{Name: c.acct.Username, DeviceID: id}); err != nil {
		return err
	}
	ids, _, err := sessions.Devices(ctx, c.db, c.acct.Username)
	if err != nil {
		return err
	}
	return sessions.Save(ctx, c.db, c.acct.Username, slices.DeleteFunc(ids, func(d uint32) bool { return d == id }))
}
