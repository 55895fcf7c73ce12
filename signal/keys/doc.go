// Package keys provides the key types of the Signal protocol as libsignal
// serializes them: Curve25519 keys (type byte 0x05) with XEdDSA signatures,
// Kyber-1024 KEM keys (type byte 0x08), and the long-term identity key pair.
package keys
