// Package sessions keeps what the per-device fan-out of a send needs to
// know of a user's devices: the device ids believed to exist for each user
// (for the own account: the other devices), learned from the relay, from
// the devices messages come from, and from the relay's stale-device
// answers. It stores them through a small KV interface (the local store or
// one of its transactions) and talks to nobody.
package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"sotto/client/store"
	"sotto/wire"
)

// Table is the store table of the device lists, one row per user.
const Table = "devices"

// KV is what the device lists need of the local store; both *store.Store
// and *store.Tx provide it.
type KV interface {
	Get(ctx context.Context, table string, key []byte) ([]byte, error)
	Put(ctx context.Context, table string, key, value []byte) error
	Delete(ctx context.Context, table string, key []byte) error
}

// Self is this device: the own account and device id, never in a list.
type Self struct {
	User   string
	Device uint32
}

// Devices returns user's device list and whether one is known (an
// unknown list is fetched from the relay before a send).
func Devices(ctx context.Context, db KV, user string) ([]uint32, bool, error) {
	b, err := db.Get(ctx, Table, []byte(user))
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var ids []uint32
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, false, fmt.Errorf("sessions: device list of %s: %w", user, err)
	}
	return ids, true, nil
}

// Save stores user's device list (sorted, without repeats).
func Save(ctx context.Context, db KV, user string, ids []uint32) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	b, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("sessions: device list of %s: %w", user, err)
	}
	return db.Put(ctx, Table, []byte(user), b)
}

// Forget drops user's device list: the next send fetches it again (a
// device was linked).
func Forget(ctx context.Context, db KV, user string) error {
	return db.Delete(ctx, Table, []byte(user))
}

// Remember adds the device a message came from to its user's list, when
// that list is known (an unknown one is fetched whole before a send).
func Remember(ctx context.Context, db KV, self Self, user string, id uint32) error {
	if user == self.User && id == self.Device {
		return nil
	}
	ids, known, err := Devices(ctx, db, user)
	if err != nil || !known || slices.Contains(ids, id) {
		return err
	}
	return Save(ctx, db, user, append(ids, id))
}

// FromRelay is the device list of user in the relay's answer: for the own
// account, without this device.
func FromRelay(self Self, user string, list []*wire.DeviceInfo) []uint32 {
	var ids []uint32
	for _, d := range list {
		if user == self.User && d.DeviceId == self.Device {
			continue
		}
		ids = append(ids, d.DeviceId)
	}
	return ids
}

// AfterStale is user's device list after the relay's stale-device answer
// st to a send to devices: the relay's current list when it gave one,
// otherwise devices with the missing ones added and the extra ones
// removed. The sessions of st.Extra and st.Mismatched must be dropped too
// (StaleSessions).
func AfterStale(self Self, user string, devices []uint32, st *wire.StaleDevices) []uint32 {
	var ids []uint32
	if st.Current != nil {
		for _, d := range st.Current.Devices {
			ids = append(ids, d.DeviceId)
		}
	} else {
		ids = slices.DeleteFunc(slices.Concat(devices, st.Missing), func(id uint32) bool { return slices.Contains(st.Extra, id) })
	}
	if user == self.User {
		ids = slices.DeleteFunc(ids, func(id uint32) bool { return id == self.Device })
	}
	return ids
}

// StaleSessions are the devices of a stale-device answer whose sessions
// must be dropped: removed devices, and re-registered ones (a new
// session starts from a fresh bundle).
func StaleSessions(st *wire.StaleDevices) []uint32 {
	return slices.Concat(st.Extra, st.Mismatched)
}
