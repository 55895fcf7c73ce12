package relay

import "sotto/wire"

// An account may refuse the organization's member access key
// (SetAccessKeyRequest.refuse_member_access): sealed sends to it must then
// present its own access key. That is how a member revokes one contact:
// the contact keeps the member key and the account's old profile key, so
// the account rotates its profile key (the contact is not given the new
// one) and refuses the member key. The flag travels with the access key
// in the store, as one byte after it, so that every store keeps it without
// a schema of its own and one read answers both.

// refuseMemberMark follows the access key of an account that refuses the
// member access key.
const refuseMemberMark = 0x01

// storedAccessKey is what the store keeps for an access key.
func storedAccessKey(key []byte, refuseMember bool) []byte {
	if !refuseMember {
		return key
	}
	return append(append(make([]byte, 0, len(key)+1), key...), refuseMemberMark)
}

// splitAccessKey returns the access key of a stored value, and 1 when the
// account refuses the member access key (0 otherwise).
func splitAccessKey(stored []byte) (key []byte, refuseMember int) {
	if len(stored) == wire.AccessKeySize+1 && stored[wire.AccessKeySize] == refuseMemberMark {
		return stored[:wire.AccessKeySize], 1
	}
	return stored, 0
}
