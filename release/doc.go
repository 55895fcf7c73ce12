// Package release is Sotto's release log format: a release manifest (one
// per version and platform: the SHA-256 and size of each file, the source
// commit and the oldest version that may update to it), the project's
// Ed25519 signature over it, the log of every manifest ever published (a
// transparency log, reusing package transparency's Merkle tree and signed
// head) and its checkpoint with the organization witness's co-signatures,
// and the rule a device applies before it installs a build (Policy.Check).
//
// A device installs a build only when all of these hold, each checked by
// this package against keys the device pins, never against what a server
// says:
//   - the manifest is signed by the release key pinned in the running binary;
//   - the organization approved that exact manifest (its hash is in an
//     approval the org key signed; the caller verifies that signature and
//     passes the approved hashes and the witness key the approval names);
//   - the manifest is in the release log under a head signed by the release
//     key and co-signed by that witness;
//   - its version is newer than the running one and the running one is at
//     least the manifest's minimum version.
//
// Like package transparency it knows nothing of networking, storage or
// logging: bytes in, bytes out.
package release
