// Package client is the Sotto client core, with no user interface: it
// enrolls and links devices, keeps the account, sessions and history in the
// encrypted local store (package client/store), talks to the relay through
// client/transport, encrypts and decrypts with the Signal protocol
// (sotto/signal/session), and reports what happens (messages, receipts,
// identity changes) to a UI through a callback.
package client
