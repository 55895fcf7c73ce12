// Package mls implements the Messaging Layer Security protocol (RFC 9420)
// for the cipher suites the Go standard library can provide: 0x0001
// (X25519, AES-128-GCM, SHA-256, Ed25519), 0x0002 (P-256), 0x0003
// (X25519, ChaCha20-Poly1305), 0x0005 (P-521) and 0x0007 (P-384). Suites
// 0x0004 and 0x0006 need X448/Ed448 and are rejected with
// ErrUnsupportedCipherSuite.
//
// The package is bytes in, bytes out: it does no networking, storage or
// logging, never panics on malformed input, and never puts secret material
// in an error message.
package mls
