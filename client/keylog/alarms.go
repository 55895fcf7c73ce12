package keylog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"sotto/client/store"
)

// Stored alarms are bounded, so that a relay provoking alarms cannot grow
// the device's storage without end: the first AlarmsKeepFirst (the
// evidence of the first incident is never dropped) and the newest
// AlarmsKeepNewest are kept, and the ones in between are counted.
const (
	AlarmsKeepFirst  = 16
	AlarmsKeepNewest = 240
	MaxStoredAlarms  = AlarmsKeepFirst + AlarmsKeepNewest
)

// AlarmKind says what a key transparency alarm found.
type AlarmKind string

// Kinds of alarms.
const (
	// AlarmFork: two signed heads that cannot both be honest (same size,
	// different roots, or no valid consistency proof between them).
	AlarmFork AlarmKind = "fork"
	// AlarmForeignKey: the log binds this account's username to an
	// identity key that is not the account's.
	AlarmForeignKey AlarmKind = "foreign-key"
	// AlarmUnprovenKey: the relay served an identity key without a valid
	// proof that the log holds it; the key was not used.
	AlarmUnprovenKey AlarmKind = "unproven-key"
	// AlarmBadLog: leaves served for an audit do not hash to the head.
	AlarmBadLog AlarmKind = "bad-log"
	// AlarmLogKeyMismatch: a contact gossiped a head that the pinned log
	// key did not sign: one of the two devices was given another log key
	// (a relay lying at enrollment shows up here).
	AlarmLogKeyMismatch AlarmKind = "log-key-mismatch"
	// AlarmUnloggedSender: a first message from a user carries an identity
	// key that the log does not bind to that user (or the relay serves no
	// key for them): someone, likely the relay, sent it in their name. The
	// message was refused.
	AlarmUnloggedSender AlarmKind = "unlogged-sender"
	// AlarmUnloggedKeyChange: a message from a known contact carries a new
	// identity key that is not the one the log holds for them. The message
	// was refused and the old key kept.
	AlarmUnloggedKeyChange AlarmKind = "unlogged-key-change"
	// AlarmStaleBinding: the relay proved a key for a user with a log leaf
	// older than one it already proved to bind another key to that user:
	// it serves a superseded key. The key was not used.
	AlarmStaleBinding AlarmKind = "stale-binding"
	// AlarmUnwitnessed: a head the relay served was not followed, within
	// the witness bound, by a head at least as large that the pinned
	// witness co-signed: the relay may be showing this device a log the
	// witness refused (a split view), or withholding the cosignatures.
	AlarmUnwitnessed AlarmKind = "unwitnessed"
	// AlarmBadCosignature: a head came with a cosignature naming the pinned
	// witness key that does not verify.
	AlarmBadCosignature AlarmKind = "bad-cosignature"
)

// Alarm is evidence that the relay misbehaved. HeadA and HeadB are the
// signed heads involved (encoded transparency.SignedHead), Leaf the
// offending binding.
type Alarm struct {
	Time      time.Time `json:"time"`
	Kind      AlarmKind `json:"kind"`
	User      string    `json:"user,omitempty"`
	Detail    string    `json:"detail"`
	HeadA     []byte    `json:"head_a,omitempty"`
	HeadB     []byte    `json:"head_b,omitempty"`
	Leaf      []byte    `json:"leaf,omitempty"`
	LeafIndex uint64    `json:"leaf_index,omitempty"`
}

func (a *Alarm) Error() string {
	return fmt.Sprintf("keylog: KEY TRANSPARENCY ALARM (%s): %s", a.Kind, a.Detail)
}

// Raise reports a at once (Config.OnAlarm) and queues it for the store
// (Flush). The queue is bounded as the store is (it grows while the store
// fails).
func (l *Log) Raise(a *Alarm) *Alarm {
	a.Time = l.cfg.Now()
	l.cfg.Logger.Error("key transparency alarm", "kind", string(a.Kind), "user", a.User, "detail", a.Detail)
	l.mu.Lock()
	if len(l.pending) >= MaxStoredAlarms {
		l.pending = slices.Delete(l.pending, AlarmsKeepFirst, AlarmsKeepFirst+1)
		l.dropped++
	}
	l.pending = append(l.pending, a)
	l.mu.Unlock()
	l.cfg.OnAlarm(a)
	return a
}

// Alarms returns the alarms kept, oldest first: the first AlarmsKeepFirst
// ever raised and the newest ones (see AlarmsDropped).
func (l *Log) Alarms(ctx context.Context) ([]Alarm, error) {
	l.Flush(ctx)
	ents, err := l.db.List(ctx, Table)
	if err != nil {
		return nil, err
	}
	ents = alarmEntries(ents)
	var out []Alarm
	for _, e := range ents {
		var a Alarm
		if err := json.Unmarshal(e.Value, &a); err != nil {
			return nil, fmt.Errorf("keylog: stored alarm: %w", err)
		}
		out = append(out, a)
	}
	l.mu.Lock()
	for _, a := range l.pending { // could not be stored yet
		out = append(out, *a)
	}
	l.mu.Unlock()
	return out, nil
}

// AlarmsDropped returns how many alarms were dropped to bound the storage
// alarms take: raised after the first AlarmsKeepFirst and before the
// newest ones kept.
func (l *Log) AlarmsDropped(ctx context.Context) (uint64, error) {
	l.Flush(ctx)
	n, err := droppedAlarms(ctx, l.db)
	l.mu.Lock()
	n += l.dropped // could not be stored yet
	l.mu.Unlock()
	return n, err
}

// alarmEntries returns the stored alarms among ents, oldest first (their
// keys hold the time they were raised).
func alarmEntries(ents []store.Entry) []store.Entry {
	ents = slices.DeleteFunc(ents, func(e store.Entry) bool { return !bytes.HasPrefix(e.Key, []byte(rowAlarmPrefix)) })
	slices.SortFunc(ents, func(a, b store.Entry) int { return bytes.Compare(a.Key, b.Key) })
	return ents
}

func droppedAlarms(ctx context.Context, db KV) (uint64, error) {
	b, err := db.Get(ctx, Table, []byte(rowAlarmsDropped))
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("keylog: stored count of dropped alarms: %w", err)
	}
	return n, nil
}

// trimAlarms deletes the stored alarms after the first AlarmsKeepFirst and
// before the newest AlarmsKeepNewest, and adds them (and extra, dropped
// before they were stored) to the stored count.
func trimAlarms(ctx context.Context, tx KV, extra uint64) error {
	ents, err := tx.List(ctx, Table)
	if err != nil {
		return err
	}
	ents = alarmEntries(ents)
	drop := uint64(0)
	if len(ents) > MaxStoredAlarms {
		for _, e := range ents[AlarmsKeepFirst : len(ents)-AlarmsKeepNewest] {
			if err := tx.Delete(ctx, Table, e.Key); err != nil {
				return err
			}
			drop++
		}
	}
	if drop+extra == 0 {
		return nil
	}
	n, err := droppedAlarms(ctx, tx)
	if err != nil {
		return err
	}
	return tx.Put(ctx, Table, []byte(rowAlarmsDropped), []byte(strconv.FormatUint(n+drop+extra, 10)))
}

// Flush stores queued alarms and proven bindings; it must run outside a
// store transaction.
func (l *Log) Flush(ctx context.Context) {
	// Evidence is kept even when the caller is being stopped.
	ctx = context.WithoutCancel(ctx)
	l.mu.Lock()
	pending, dropped := l.pending, l.dropped
	l.pending, l.dropped = nil, 0
	// The bindings stay in l.bound until they are committed: taken out
	// here, a checkBinding between now and the commit would find neither
	// them nor the stored ones and accept an older leaf binding another key.
	bound := maps.Clone(l.bound)
	l.mu.Unlock()
	if len(pending) == 0 && len(bound) == 0 && dropped == 0 {
		return
	}
	err := l.db.Update(ctx, func(tx *store.Tx) error {
		for user, b := range bound {
			if err := StoreBinding(ctx, tx, user, b); err != nil {
				return err
			}
		}
		for _, a := range pending {
			b, err := json.Marshal(a)
			if err != nil {
				return err
			}
			l.mu.Lock()
			l.alarmSeq++
			key := fmt.Sprintf("%s%020d-%06d", rowAlarmPrefix, a.Time.UnixNano(), l.alarmSeq)
			l.mu.Unlock()
			if err := tx.Put(ctx, Table, []byte(key), b); err != nil {
				return err
			}
		}
		if len(pending) == 0 && dropped == 0 {
			return nil
		}
		return trimAlarms(ctx, tx, dropped)
	})
	if err != nil {
		l.cfg.Logger.Error("key transparency alarms not stored", "err", err)
		l.mu.Lock()
		l.pending = append(pending, l.pending...)
		l.dropped += dropped
		for len(l.pending) > MaxStoredAlarms {
			l.pending = slices.Delete(l.pending, AlarmsKeepFirst, AlarmsKeepFirst+1)
			l.dropped++
		}
		l.mu.Unlock()
		return
	}
	l.mu.Lock()
	for user, b := range bound {
		if q, ok := l.bound[user]; ok && q.Index == b.Index {
			delete(l.bound, user)
		}
	}
	l.mu.Unlock()
}
