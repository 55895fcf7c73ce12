// Package mlsinterop holds the tests that prove Sotto's MLS (sotto/mls)
// against the MLS working group's interop test-runner
// (github.com/mlswg/mls-implementations, interop/test-runner), alone and
// paired with a second implementation, through the MLSClient gRPC server
// of interop/mls/mlsserver and cmd/mls-interop.
//
// The in-process tests always run: two servers on loopback drive a group
// through a real gRPC connection. The runner tests need binaries built
// outside this module and run only when SOTTO_MLS_RUNNER names the runner
// (see docs/interop.md, section MLS).
package mlsinterop
