// Package sealed implements libsignal's sealed sender, version 1: the
// server and sender certificates, UnidentifiedSenderMessageContent, and the
// two-layer (ephemeral, then static) X25519 + HKDF-SHA256 + AES-256-CTR +
// HMAC-SHA256 envelope that hides the sender's identity from the relay, byte
// for byte as libsignal's rust/protocol/src/sealed_sender.rs does it. It also
// derives the unidentified access key from a 32-byte profile key as Signal
// does.
//
// A sender certificate proves nothing about who the sender is unless the
// recipient compares its identity key with the one it already holds for that
// sender: Decrypt does that, and refuses a mismatch with ErrIdentityMismatch.
package sealed
