// Package transport is the Go client of the Sotto relay protocol: one
// WebSocket carrying wire.Frame messages, requests correlated with responses
// by id, pushes (envelopes, provisioning messages) delivered on channels,
// and failures reported as *Error carrying the wire.ErrorCode. Envelopes are
// acknowledged with AckLater: the Conn batches the ids and sends again an
// Ack the relay refused for a passing reason (acks.go).
//
// A Conn does not reconnect: when it ends, Done is closed and the caller
// dials again (and authenticates again).
package transport
