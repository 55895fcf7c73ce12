// Package orgcert is the chain by which an organization vouches for its
// members' identity keys, and which the relay cannot complete for an
// impostor:
//
//	org key ──signs──▶ Grant (username, one-time invitation key, seat token hash)
//	invitation key ──signs──▶ IdentityCertificate (grant, identity key)
//
// The org admin's client mints an invitation: a fresh invitation key pair,
// a grant for it signed with the org key, and a seat token. The grant and
// the seat token's hash go to the relay; the invitation's private half and
// the seat token go to the invited person out of band. The enrolling device
// signs its identity key with the invitation key. Every contact checks the
// chain against the org key it pinned from its own invitation before it
// trusts a served key, so a relay that enrolls its own device under
// someone's name, or serves another key for them, has no certificate for
// it.
//
// Bytes in, bytes out: no network, storage or logging.
package orgcert
