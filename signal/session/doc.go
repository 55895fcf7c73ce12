// Package session implements the Signal protocol's session layer as libsignal
// 0.90 does it on the wire: PQXDH session setup from a prekey bundle, the
// Double Ratchet, the version-4 SignalMessage and PreKeySignalMessage, session
// records with archived previous states, and the prekey records. It does no
// I/O of its own: callers supply the stores.
package session
