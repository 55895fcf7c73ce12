// Package store is the client's local database, encrypted at rest.
//
// A random 256-bit data key seals every stored value with XChaCha20-Poly1305;
// the associated data binds each value to its table and row, so rows cannot be
// swapped or moved between tables. Lookup keys (usernames, message ids, ...)
// are replaced by HMAC-SHA256 digests under a key derived from the data key,
// so the SQLite file holds no plaintext names or content. SQLite runs with
// secure_delete=ON so freed pages are zeroed.
//
// The data key is itself wrapped (XChaCha20-Poly1305) under a key derived
// from the device passphrase with Argon2id. The wrapped key, the salt and the
// KDF parameters live in a small versioned key file beside the database.
// Wipe crypto-shreds the store: it overwrites and removes the key file first,
// then removes the database files.
package store
