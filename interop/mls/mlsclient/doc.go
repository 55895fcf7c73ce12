// Package mlsclient holds the Go code generated from mls_client.proto: the
// MLSClient gRPC service through which the MLS working group's interop
// test-runner drives an MLS implementation. The schema is Sotto's own,
// written to match the runner's field for field.
package mlsclient
