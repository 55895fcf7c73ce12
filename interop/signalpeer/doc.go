// Package signalpeer drives a Signal-protocol implementation that runs as a separate
// process and speaks the signal-peer line protocol: one JSON request per line on the
// process's standard input, one JSON reply per line on its standard output.
//
// Any two such peers (Sotto's Go implementation in cmd/signal-peer, libsignal through
// interop/signal-node) can be paired by a test: bundles, ciphertexts and identity keys
// are carried between them as opaque bytes, so every byte one implementation produces
// is parsed by the other.
package signalpeer
