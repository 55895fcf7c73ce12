// Package session implements the Signal protocol's session layer as libsignal
// does it on the wire (checked against 0.90 and 0.103): PQXDH session setup
// from a prekey bundle, the triple ratchet (the Double Ratchet with SPQR), the
// version-4 SignalMessage and PreKeySignalMessage, session
// records with archived previous states, and the prekey records. It does no
// I/O of its own: callers supply the stores.
//
// Post-quantum ratchet: every session runs SPQR (package spqr) beside the
// Double Ratchet, the "triple ratchet" of libsignal: PQXDH's 96-byte
// expansion seeds it, each SignalMessage carries its message in the
// pq_ratchet field (covered by the MAC), its per-message key is the HKDF
// salt of the message keys, skipped keys are kept as chain seeds, and its
// state is field 15 of the stored session state. Sotto requires it
// (minimum version 1): a peer whose messages carry no pq_ratchet data is
// refused with ErrNoPQRatchet, never silently downgraded. Records of older
// sessions without SPQR state keep working with the classical ratchet.
//
// Concurrency: Encrypt, Decrypt and ProcessPreKeyBundle load a record, change
// it and store it. Callers run at most one of them at a time per remote
// Address (operations on different addresses may run in parallel).
package session
