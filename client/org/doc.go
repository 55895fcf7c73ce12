// Package org verifies and produces the organization's signed documents:
// notices, device policy, remote wipe orders and membership certificates,
// all signed with the organization's Ed25519 key, which only its admins'
// clients hold. It also binds activation codes to the organization key's
// fingerprint and seals the private key for export to another admin
// device. It does no I/O: bytes in, verdicts out.
package org
