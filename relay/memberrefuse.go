package relay

import (
	"encoding/binary"
	"errors"
	"fmt"

	"sotto/wire"
)

// An account may refuse the organization's member access key
// (SetAccessKeyRequest.refuse_member_access): sealed sends to it must then
// present its own access key. That is how a member revokes one contact:
// the contact keeps the member key and the account's old profile key, so
// the account rotates its profile key (the contact is not given the new
// one) and refuses the member key. The flag travels with the access key
// in the store, as one byte after it, so that every store keeps it without
// a schema of its own and one read answers both.
//
// An access key also carries the epoch of the profile key it derives from
// (SetAccessKeyRequest.epoch), stored as 8 bytes after the flag byte. The
// relay refuses an upload of a lower epoch than the stored one
// (ErrStaleAccessKey): a linked device that has not yet heard of a
// revocation made on its sibling cannot bring the older key back. The
// check is a read and then a write, not one transaction: two uploads that
// race within one request's time may still leave the older key, and the
// account's devices set it right (each uploads its key on every connect).
// A hostile relay can of course keep any key it likes; the clients do not
// rely on this check (client/sealedsender/state.go).

// ErrStaleAccessKey refuses an access key of a lower epoch than the one
// the relay holds for the account.
var ErrStaleAccessKey = errors.New("relay: an access key of a newer epoch is set for this account")

// refuseMemberMark follows the access key of an account that refuses the
// member access key.
const refuseMemberMark = 0x01

// storedAccessKey is what the store keeps for an access key: the key, then
// (when the member key is refused or an epoch is given) one flag byte,
// then (when an epoch is given) the epoch, big-endian.
func storedAccessKey(key []byte, refuseMember bool, epoch uint64) []byte {
	if !refuseMember && epoch == 0 {
		return key
	}
	b := append(make([]byte, 0, len(key)+9), key...)
	flag := byte(0)
	if refuseMember {
		flag = refuseMemberMark
	}
	b = append(b, flag)
	if epoch == 0 {
		return b
	}
	return binary.BigEndian.AppendUint64(b, epoch)
}

// splitAccessKey returns the access key of a stored value, 1 when the
// account refuses the member access key (0 otherwise), and its epoch.
func splitAccessKey(stored []byte) (key []byte, refuseMember int, epoch uint64) {
	switch {
	case len(stored) == wire.AccessKeySize+9 && stored[wire.AccessKeySize]&^refuseMemberMark == 0:
		epoch = binary.BigEndian.Uint64(stored[wire.AccessKeySize+1:])
		return stored[:wire.AccessKeySize], int(stored[wire.AccessKeySize]), epoch
	case len(stored) == wire.AccessKeySize+1 && stored[wire.AccessKeySize] == refuseMemberMark:
		return stored[:wire.AccessKeySize], 1, 0
	}
	return stored, 0, 0
}

// checkAccessKeyEpoch refuses an upload of epoch below the stored one.
func checkAccessKeyEpoch(stored []byte, epoch uint64) error {
	if _, _, have := splitAccessKey(stored); epoch < have {
		return fmt.Errorf("%w (epoch %d below %d)", ErrStaleAccessKey, epoch, have)
	}
	return nil
}
