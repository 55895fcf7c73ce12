// Package relay is the Sotto relay server: it enrolls the devices its
// organization invited (seats of org-signed grants), authenticates them by Ed25519 signed challenge, keeps
// public prekeys and the directory of accounts and devices, and stores and
// forwards opaque ciphertext envelopes until their recipient device
// acknowledges them.
//
// The relay is untrusted by design: it never sees plaintext or private
// keys, and nothing it logs contains content or key material.
//
// Storage sits behind the Directory and Mailbox interfaces declared here
// (implemented by relay/sqlitestore and checked by relay/storetest); the
// "a message waits for device X" wake-up sits behind Bus (LocalBus in one
// process); a client connection sits behind Socket (WebSocket by default).
package relay
