package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sotto/internal/orgtest"
	"sotto/wire"
)

// simDevice is one simulated device: enrolled with an invitation of
// sotto-load's organization (org.go), then logged in on a fresh connection by answering the relay's
// challenge with its Ed25519 key.
type simDevice struct {
	idx  int
	name string
	id   uint32
	reg  uint32
	key  ed25519.PrivateKey
	ws   *wsConn
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// RelayError is a non-OK response to a setup request.
type RelayError struct {
	Code       wire.ErrorCode
	Message    string
	RetryAfter time.Duration
}

func (e *RelayError) Error() string {
	return fmt.Sprintf("sotto-load: relay error %s: %s", e.Code, e.Message)
}

// enrollAll enrolls and logs in cfg.Devices devices in parallel; their
// connections stay open and authenticated.
func enrollAll(ctx context.Context, cfg Config, readBuf int, out io.Writer) ([]*simDevice, error) {
	seats, err := inviteDevices(ctx, cfg, out)
	if err != nil {
		return nil, err
	}
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
				d, err := enrollOne(ctx, cfg, seats[i], i, readBuf)
				if err != nil {
					errOnce.Do(func() { first = fmt.Errorf("enroll device %d: %w", i, err); cancel() })
					return
				}
				devs[i] = d
				if n := done.Add(1); n%1000 == 0 {
					fmt.Fprintf(out, "  enrolled and logged in %d devices (%.0f/s)\n", n, float64(n)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		for _, d := range devs {
			if d != nil {
				d.ws.close()
			}
		}
		return nil, first
	}
	fmt.Fprintf(out, "enrolled and logged in %d devices in %v\n", cfg.Devices, time.Since(start).Round(time.Millisecond))
	return devs, nil
}

// setupConn is a connection during enrollment and login: requests are
// answered one at a time, and the latest challenge is remembered.
type setupConn struct {
	ws     *wsConn
	nonce  []byte
	nextID uint64
}

func dialSetup(ctx context.Context, relayURL string, readBuf int) (*setupConn, error) {
	ws, err := wsDial(ctx, relayURL, readBuf)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { ws.c.Close() })
	defer stop()
	c := &setupConn{ws: ws}
	for c.nonce == nil {
		f, err := ws.readFrame()
		if err != nil {
			ws.close()
			return nil, fmt.Errorf("sotto-load: waiting for the challenge: %w", err)
		}
		if ch := f.GetPush().GetChallenge(); ch != nil {
			c.nonce = ch.Nonce
		}
	}
	return c, nil
}

// do sends one request built from the current challenge nonce and waits
// for its response, noting challenges pushed meanwhile.
func (c *setupConn) do(ctx context.Context, build func(nonce []byte) *wire.Request) (*wire.Response, error) {
	stop := context.AfterFunc(ctx, func() { c.ws.c.Close() })
	defer stop()
	req := build(c.nonce)
	c.nextID++
	req.Id = c.nextID
	if err := c.ws.writeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: req}}); err != nil {
		return nil, err
	}
	for {
		f, err := c.ws.readFrame()
		if err != nil {
			return nil, err
		}
		if ch := f.GetPush().GetChallenge(); ch != nil {
			c.nonce = ch.Nonce
			continue
		}
		r := f.GetResponse()
		if r == nil || r.Id != req.Id {
			continue
		}
		if r.Code != wire.ErrorCode_OK {
			return r, &RelayError{Code: r.Code, Message: r.Message, RetryAfter: time.Duration(r.RetryAfterMs) * time.Millisecond}
		}
		return r, nil
	}
}

// doRetry is do, retried while the relay answers RATE_LIMITED.
func (c *setupConn) doRetry(ctx context.Context, build func(nonce []byte) *wire.Request) (*wire.Response, error) {
	for attempt := 0; ; attempt++ {
		r, err := c.do(ctx, build)
		re, ok := err.(*RelayError)
		if !ok || re.Code != wire.ErrorCode_RATE_LIMITED || attempt >= 20 {
			return r, err
		}
		select {
		case <-time.After(max(re.RetryAfter, 50*time.Millisecond)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func enrollOne(ctx context.Context, cfg Config, seat *orgtest.Seat, i, readBuf int) (*simDevice, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d := &simDevice{idx: i, name: deviceName(cfg, i), reg: uint32(i + 1)}

	// Enrollment, on its own connection.
	c, err := enrollDevice(ctx, cfg, d, seat, nil, 4096)
	if err != nil {
		return nil, err
	}
	c.ws.close()
	if d.ws, err = login(ctx, cfg, d, readBuf); err != nil {
		return nil, err
	}
	return d, nil
}

// login logs d in on a new connection: the relay's challenge signed with
// the device key.
func login(ctx context.Context, cfg Config, d *simDevice, readBuf int) (*wsConn, error) {
	c, err := dialSetup(ctx, cfg.Relay, readBuf)
	if err != nil {
		return nil, err
	}
	_, err = c.doRetry(ctx, func(nonce []byte) *wire.Request {
		return &wire.Request{Body: &wire.Request_Authenticate{Authenticate: &wire.AuthenticateRequest{
			Username: d.name, DeviceId: d.id, Signature: ed25519.Sign(d.key, wire.AuthTranscript(nonce, d.name, d.id)),
		}}}
	})
	if err != nil {
		c.ws.close()
		return nil, fmt.Errorf("login: %w", err)
	}
	return c.ws, nil
}

// enrollDevice enrolls d with its invitation's seat and a certificate of
// a fresh identity key (bootstrapKey: the org key the bootstrap
// enrollment registers), sets d's key and id, and returns the connection.
func enrollDevice(ctx context.Context, cfg Config, d *simDevice, seat *orgtest.Seat, bootstrapKey ed25519.PublicKey, readBuf int) (*setupConn, error) {
	pub, key, _ := ed25519.GenerateKey(nil)
	c, err := dialSetup(ctx, cfg.Relay, readBuf)
	if err != nil {
		return nil, err
	}
	idKey := randBytes(33)
	cert := seat.Certify(idKey)
	resp, err := c.doRetry(ctx, func(nonce []byte) *wire.Request {
		return &wire.Request{Body: &wire.Request_Enroll{Enroll: &wire.EnrollRequest{
			ActivationCode: seat.Code, Username: d.name, DeviceKey: pub, IdentityKey: idKey, RegistrationId: d.reg,
			DeviceName: "sotto-load", IdentityCertificate: cert, BootstrapOrgKey: bootstrapKey,
			Prekeys: &wire.PreKeys{
				SignedPrekey:    &wire.SignedPreKey{Id: 1, PublicKey: randBytes(33), Signature: randBytes(64)},
				LastResortKyber: &wire.SignedPreKey{Id: 2, PublicKey: randBytes(1569), Signature: randBytes(64)},
			},
			Signature: ed25519.Sign(key, wire.EnrollTranscript(nonce, d.name, pub, idKey, d.reg)),
		}}}
	})
	if err != nil {
		c.ws.close()
		return nil, err
	}
	d.key, d.id = key, resp.GetEnroll().GetDeviceId()
	if d.id == 0 {
		c.ws.close()
		return nil, fmt.Errorf("sotto-load: enrollment answered no device id")
	}
	return c, nil
}

// relayMetrics scrapes the relay's /metrics into name -> value (labels kept
// in the name).
func relayMetrics(ctx context.Context, relayURL string) (map[string]float64, error) {
	u, err := url.Parse(relayURL)
	if err != nil {
		return nil, err
	}
	u.Scheme = strings.Replace(strings.Replace(u.Scheme, "wss", "https", 1), "ws", "http", 1)
	u.Path, u.RawQuery = "/metrics", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
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
