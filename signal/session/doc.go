// Package session implements the Signal protocol's session layer as libsignal
// 0.90 does it on the wire: PQXDH session setup from a prekey bundle, the
// Double Ratchet, the version-4 SignalMessage and PreKeySignalMessage, session
// records with archived previous states, and the prekey records. It does no
// I/O of its own: callers supply the stores.
//
// Post-quantum ratchet: libsignal 0.90 also runs SPQR, but starts each
// session willing to fall back to the classical ratchet (minimum version 0)
// and does so as soon as the peer's messages carry no pq_ratchet field. This
// package never sends that field and ignores it on receipt, so sessions with
// libsignal run the classical Double Ratchet. Records keep room for SPQR
// state (field 15 of the state protobuf, as libsignal).
//
// Concurrency: Encrypt, Decrypt and ProcessPreKeyBundle load a record, change
// it and store it. Callers run at most one of them at a time per remote
// Address (operations on different addresses may run in parallel).
package session
