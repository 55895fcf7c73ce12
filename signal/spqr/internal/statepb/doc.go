// Package statepb holds the generated protobuf types of SPQR's stored state
// (state.proto), laid out as libsignal lays out its own.
package statepb
