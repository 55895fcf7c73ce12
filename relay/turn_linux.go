package relay

import (
	"context"
	"net"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenTURNUDP opens one UDP socket per CPU on addr with SO_REUSEPORT, so
// that the kernel spreads clients over them and each has its own reading
// goroutine in the TURN server.
func listenTURNUDP(ctx context.Context, addr string) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var out []net.PacketConn
	for range max(1, runtime.GOMAXPROCS(0)) {
		pc, err := lc.ListenPacket(ctx, "udp4", addr)
		if err != nil {
			for _, p := range out {
				p.Close()
			}
			return nil, err
		}
		if u, ok := pc.(*net.UDPConn); ok {
			u.SetReadBuffer(4 << 20) // absorbs the 20 ms bursts of many calls
			u.SetWriteBuffer(4 << 20)
		}
		out = append(out, pc)
		addr = pc.LocalAddr().String() // the port chosen for ":0"
	}
	return out, nil
}
