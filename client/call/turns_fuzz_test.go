package call

import (
	"net"
	"strings"
	"testing"
)

// FuzzTURNSURLs: the TURN URLs come from the relay (untrusted). Whatever
// they are, newTURNSDialer does not panic, and every server it will dial
// with TLS is a host:port taken from a turns: URL.
func FuzzTURNSURLs(f *testing.F) {
	for _, s := range []string{
		"turns:relay.example.org:5349?transport=tcp", "turns:[::1]:443?transport=tcp", "turns:host",
		"turns:", "turns:[::1", "turn:127.0.0.1:3478?transport=udp", "turns::5349", "turns:a:b:c?x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		d, err := newTURNSDialer([]string{u, "turn:127.0.0.1:3478?transport=tcp"}, nil)
		if err != nil || d == nil {
			return
		}
		if !strings.HasPrefix(u, "turns:") {
			t.Fatalf("%q made a TLS dialer", u)
		}
		for addr := range d.secure {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				t.Fatalf("%q: secure address %q: %v", u, addr, err)
			}
		}
	})
}
