// Package mlsserver implements the MLSClient gRPC service of the MLS working
// group's interop test-runner (github.com/mlswg/mls-implementations) on top of
// sotto/mls, so the runner can drive Sotto's MLS alone or against another
// implementation.
//
// A Server keeps every group state and pending key package in memory under
// numeric ids handed to the runner, guarded by one mutex. Members use basic
// credentials and fresh signature keys; external signers (CreateExternalSigner)
// are kept the same way. Requests sotto/mls cannot serve (cipher suites 4
// and 6, a ReInit proposal by value in a commit) answer codes.Unimplemented
// with a message naming what is missing.
package mlsserver
