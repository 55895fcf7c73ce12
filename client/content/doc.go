// Package content defines the end-to-end Content message that Sotto clients
// encrypt to each other (text, replies, receipts, sync transcripts for the
// sender's own devices), and its padded encoding: encoded messages are padded
// to a multiple of a block size before encryption, as Signal does, so
// ciphertext lengths reveal little about the text.
package content
