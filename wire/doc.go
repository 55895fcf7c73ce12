// Package wire defines the frames exchanged between Sotto clients and the
// relay over one WebSocket: the protobuf messages (wire.proto, generated
// into wire.pb.go), the protocol version, the frame size limit, frame
// encoding and decoding, and the domain-separated transcripts that devices
// sign to prove possession of their Ed25519 device key.
//
// Regenerate wire.pb.go from the module root with:
//
//	PATH=$PATH:/root/go/bin protoc --go_out=. --go_opt=module=sotto wire/wire.proto
package wire
