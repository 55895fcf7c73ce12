// Package client is the Sotto client core, with no user interface, and
// the facade over its parts: it enrolls and links devices, keeps the
// account, sessions and history in the encrypted local store (package
// client/store), talks to the relay through client/transport, encrypts and
// decrypts with the Signal protocol (sotto/signal/session), and reports
// what happens (messages, receipts, identity changes) to a UI through a
// callback (Options.OnEvent); Run stays connected.
//
// Parts split out of it, each with one job, are wired here and never
// import this package (internal/archtest): client/keylog (key
// transparency), client/sessions (the device lists of the send fan-out),
// client/linktransfer (the link code and its sealed channel),
// client/groups (group chats). Receiving is one pipeline (pipeline.go):
// open, vet keys with the relay before any transaction, decrypt once,
// decode, the handler registered for the content's kind, commit, ack,
// events. No lock is held and no transaction is open across a relay call.
package client
