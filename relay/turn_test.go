package relay

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/turn/v5"
)

func startTestTURN(t testing.TB) (*TURNServer, *TURNCredentials) {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	ts, err := StartTURN(context.Background(), TURNServerConfig{Secret: secret, UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	return ts, &TURNCredentials{Secret: secret, URLs: ts.URLs(""), TTL: time.Minute}
}

// turnClient allocates a relayed address with username/password.
func turnClient(t testing.TB, server, username, password string) (*turn.Client, net.PacketConn, error) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: server, Username: username, Password: password, Realm: "sotto", Conn: conn})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		c.Close()
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); conn.Close() })
	relayed, err := c.Allocate()
	return c, relayed, err
}

func TestTURNCredentials(t *testing.T) {
	ts, creds := startTestTURN(t)
	now := time.Now()
	good := creds.issue(now)
	exp, nonce, ok := strings.Cut(good.Username, ":")
	if !ok || exp != strconv.FormatInt(now.Add(time.Minute).Unix(), 10) || len(nonce) != 26 || len(good.Urls) != 2 {
		t.Fatalf("issued %q %v", good.Username, good.Urls)
	}
	_, relayed, err := turnClient(t, ts.UDPAddr(), good.Username, good.Password)
	if err != nil {
		t.Fatalf("valid credentials refused: %v", err)
	}
	relayed.Close()

	expired := creds.issue(now.Add(-2 * time.Minute))
	if _, _, err := turnClient(t, ts.UDPAddr(), expired.Username, expired.Password); err == nil {
		t.Error("expired credentials accepted")
	}
	// Stretching the expiry invalidates the HMAC.
	forged := fmt.Sprintf("%d:%s", now.Add(time.Hour).Unix(), nonce)
	if _, _, err := turnClient(t, ts.UDPAddr(), forged, good.Password); err == nil {
		t.Error("forged username accepted")
	}
	other := &TURNCredentials{Secret: []byte("another relay's secret, 32 bytes")}
	if c := other.issue(now); c.Password == good.Password {
		t.Error("password does not depend on the secret")
	} else if _, _, err := turnClient(t, ts.UDPAddr(), c.Username, c.Password); err == nil {
		t.Error("credentials of another secret accepted")
	}
}

// TestTURNCredentialNoncesDiffer: two credentials issued at the same
// instant share nothing but the expiry, so an observer cannot tell one
// device's allocations apart from another's. (That a device's credential
// names neither its account nor its device is checked end to end in
// client/call.)
func TestTURNCredentialNoncesDiffer(t *testing.T) {
	_, creds := startTestTURN(t)
	now := time.Now()
	a, b := creds.issue(now), creds.issue(now)
	_, na, _ := strings.Cut(a.Username, ":")
	_, nb, _ := strings.Cut(b.Username, ":")
	if na == nb || a.Password == b.Password {
		t.Fatalf("two credentials alike: %q %q", a.Username, b.Username)
	}
}

// BenchmarkTURNRelayedCalls drives SOTTO_TURN_CALLS (default 50)
// concurrent relayed "calls" through one TURN server for
// SOTTO_TURN_SECONDS (default 5): each call is two TURN allocations
// sending each other 50 packets of 172 bytes per second (20 ms G.711 in
// SRTP), relay to relay, as a relay-only call does. It reports the loss.
func BenchmarkTURNRelayedCalls(b *testing.B) {
	calls := envInt("SOTTO_TURN_CALLS", 50)
	secs := envInt("SOTTO_TURN_SECONDS", 5)
	ts, creds := startTestTURN(b)
	creds.TTL = time.Hour
	type end struct{ relayed net.PacketConn }
	ends := make([]end, 2*calls)
	for i := range ends {
		c := creds.issue(time.Now())
		_, relayed, err := turnClient(b, ts.UDPAddr(), c.Username, c.Password)
		if err != nil {
			b.Fatalf("allocation %d: %v", i, err)
		}
		ends[i] = end{relayed}
	}
	b.ResetTimer()
	for range b.N {
		var sent, recv atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
		for i := range ends {
			me, peer := ends[i].relayed, ends[i^1].relayed
			wg.Add(2)
			go func() { // receiver
				defer wg.Done()
				buf := make([]byte, 1500)
				for {
					me.SetReadDeadline(deadline.Add(2 * time.Second))
					if _, _, err := me.ReadFrom(buf); err != nil {
						return
					}
					recv.Add(1)
				}
			}()
			go func() { // sender, 50 packets per second
				defer wg.Done()
				pkt := make([]byte, 172)
				t := time.NewTicker(20 * time.Millisecond)
				defer t.Stop()
				for seq := uint32(0); ; seq++ {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					if time.Now().After(deadline) {
						return
					}
					binary.BigEndian.PutUint32(pkt, seq)
					if _, err := me.WriteTo(pkt, peer.LocalAddr()); err == nil {
						sent.Add(1)
					}
				}
			}()
		}
		time.Sleep(time.Until(deadline) + 2*time.Second)
		close(stop)
		for _, e := range ends {
			e.relayed.SetReadDeadline(time.Now())
		}
		wg.Wait()
		loss := 100 * float64(sent.Load()-recv.Load()) / float64(max(sent.Load(), 1))
		b.ReportMetric(float64(calls), "calls")
		b.ReportMetric(loss, "%loss")
		b.ReportMetric(float64(recv.Load())/float64(secs), "pkts/s")
		b.Logf("%d calls, %d s: sent %d, received %d, loss %.3f%%, %d allocations", calls, secs, sent.Load(), recv.Load(), loss, ts.AllocationCount())
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
