// Package transparency is Sotto's key transparency log format: RFC 9162
// (Certificate Transparency v2) Merkle tree hashing with SHA-256, inclusion
// and consistency proofs (generated from stored subtree hashes, verified
// exactly as RFC 9162 §2.1.3.2 and §2.1.4.2 say), the relay's Ed25519-signed
// tree head, and the canonical encoding of one (username, identity key)
// binding, the log's leaf. It knows nothing of networking, storage or logging.
package transparency
