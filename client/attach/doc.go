// Package attach encrypts files into opaque attachment blobs and moves them
// to and from the relay's blob store, resuming after dropped connections.
//
// A blob is a 12-byte header (magic "SOTTOA1\n" and the plaintext chunk size,
// big-endian uint32) followed by the file cut into chunks of that size, each
// sealed with AES-256-GCM under a fresh random per-file key. This is the
// STREAM construction: chunk i uses the nonce 0^7 || uint32(i) || last, where
// last is 1 only on the final chunk, and the header as associated data, so
// chunks cannot be reordered, dropped, duplicated or the blob truncated
// without an authentication failure. An empty file is one empty final chunk.
// A SHA-256 digest over the whole blob travels with the key in the
// end-to-end encrypted AttachmentPointer; readers check it too.
//
// Memory is bounded by a few chunks (64 KiB each by default) plus the HTTP
// buffers, whatever the file size.
package attach
