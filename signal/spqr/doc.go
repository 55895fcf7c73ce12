// Package spqr implements Signal's Sparse Post-Quantum Ratchet (SPQR) as
// libsignal runs it: the ML-KEM-768 Braid (version 1), a sparse continuous
// key agreement in epochs whose encapsulation keys and ciphertexts travel in
// 32-byte erasure-coded chunks, one per message, plus the symmetric chain
// that turns each epoch's secret into per-message keys. The Double Ratchet
// (package session) mixes those keys into its own message keys.
//
// The API is libsignal's: bytes in, bytes out. A session holds an opaque
// serialized state; Send returns the next state, the message to put in the
// SignalMessage's pq_ratchet field and the message key; Recv does the same
// for an incoming pq_ratchet field. Serialized states use libsignal's
// protobuf layout.
//
// ML-KEM-768 is split as libsignal splits it (a 64-byte header ρ‖H(ek) sent
// before the 1152-byte rest of the encapsulation key; the ciphertext's
// 960-byte u part computed from the header alone, the 128-byte v part once
// the rest has arrived). This package builds that from circl's ML-KEM-768
// and its exported K-PKE (Kyber CPAPKE, identical in ML-KEM), never from
// home-made lattice arithmetic; see mlkem.go.
package spqr
