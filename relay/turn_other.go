//go:build !linux

package relay

import (
	"context"
	"net"
)

// listenTURNUDP opens the TURN server's UDP socket.
func listenTURNUDP(ctx context.Context, addr string) ([]net.PacketConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp4", addr)
	if err != nil {
		return nil, err
	}
	return []net.PacketConn{pc}, nil
}
