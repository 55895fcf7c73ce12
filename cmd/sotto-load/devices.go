package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sotto/client/transport"
	"sotto/wire"
)

// simDevice is one simulated, enrolled and connected device.
type simDevice struct {
	name string
	id   uint32
	reg  uint32
	conn *transport.Conn
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// enrollAll enrolls cfg.Devices devices in parallel and keeps them
// connected (enrollment authenticates the connection).
func enrollAll(ctx context.Context, cfg Config, out io.Writer) ([]*simDevice, error) {
	devs := make([]*simDevice, cfg.Devices)
	var (
		next    atomic.Int64
		done    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	for range cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Devices || ctx.Err() != nil {
					return
				}
				d, err := enrollOne(ctx, cfg, i)
				if err != nil {
					errOnce.Do(func() { first = fmt.Errorf("enroll device %d: %w", i, err); cancel() })
					return
				}
				devs[i] = d
				if n := done.Add(1); n%1000 == 0 {
					fmt.Fprintf(out, "  enrolled %d devices (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		for _, d := range devs {
			if d != nil {
				d.conn.Close()
			}
		}
		return nil, first
	}
	fmt.Fprintf(out, "enrolled %d devices in %v\n", cfg.Devices, time.Since(start).Round(time.Millisecond))
	return devs, nil
}

func enrollOne(ctx context.Context, cfg Config, i int) (*simDevice, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := transport.Dial(dctx, cfg.Relay, transport.Options{})
	if err != nil {
		return nil, err
	}
	_, key, _ := ed25519.GenerateKey(nil)
	d := &simDevice{name: fmt.Sprintf("%s-%d", cfg.Prefix, i), reg: uint32(i + 1)}
	for attempt := 0; ; attempt++ {
		resp, err := c.Enroll(dctx, &wire.EnrollRequest{
			ActivationCode: cfg.Code, Username: d.name, IdentityKey: randBytes(33), RegistrationId: d.reg,
			DeviceName: "sotto-load",
			Prekeys: &wire.PreKeys{
				SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: randBytes(33), Signature: randBytes(64)},
				LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: randBytes(1569), Signature: randBytes(64)},
			},
		}, key)
		var te *transport.Error
		if err != nil && attempt < 20 && asError(err, &te) && te.Code == wire.ErrorCode_RATE_LIMITED {
			time.Sleep(max(te.RetryAfter, 50*time.Millisecond))
			continue
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		d.id = resp.DeviceId
		break
	}
	d.conn = c
	return d, nil
}

// relayMetrics scrapes the relay's /metrics into name -> value (labels kept
// in the name).
func relayMetrics(ctx context.Context, relayURL string) (map[string]float64, error) {
	u := strings.Replace(strings.Replace(relayURL, "wss://", "https://", 1), "ws://", "http://", 1)
	u = strings.TrimSuffix(u, "/") + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			m[line[:i]] = v
		}
	}
	return m, nil
}
