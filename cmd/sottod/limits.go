package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"sotto/relay"
)

// LimitConfig holds the serve flags that bound what clients, above all
// those without an account, can hold: connection caps, lifetimes of
// unauthenticated connections, the global enrollment limit, address
// keying and trusted proxies, and the operator's own listener.
type LimitConfig struct {
	// MetricsListen serves /metrics, /healthz and /readyz ("": nowhere;
	// the public listener answers 404 for /metrics and /readyz).
	MetricsListen string
	// Connection caps (relay.ConnLimits).
	ConnsPerAddr       int
	UnauthPerAddr      int
	MaxUnauthenticated int
	HTTPPerAddr        int
	// RefuseWhenFull: at MaxUnauthenticated, refuse newcomers instead of
	// closing the oldest unauthenticated connection.
	RefuseWhenFull bool
	// Lifetimes of connections that have not authenticated.
	LoginTimeout      time.Duration
	ProvisionTimeout  time.Duration
	SealedIdleTimeout time.Duration
	// EnrollRateAll and EnrollBurstAll limit enrollments and links of
	// all clients together.
	EnrollRateAll  float64
	EnrollBurstAll int
	// Client address keys: prefix lengths, and the reverse proxies whose
	// forwarding header is believed (CIDRs or addresses).
	AddrPrefixV4    int
	AddrPrefixV6    int
	TrustedProxies  []string
	ForwardedHeader string
}

func defaultLimitConfig() LimitConfig {
	d := relay.DefaultConfig()
	return LimitConfig{
		ConnsPerAddr:       d.ConnLimits.PerAddr,
		UnauthPerAddr:      d.ConnLimits.PerAddrUnauthenticated,
		MaxUnauthenticated: d.ConnLimits.MaxUnauthenticated,
		HTTPPerAddr:        d.ConnLimits.PerAddrHTTP,
		LoginTimeout:       d.LoginTimeout,
		ProvisionTimeout:   d.ProvisionTimeout,
		SealedIdleTimeout:  d.SealedIdleTimeout,
		EnrollRateAll:      d.EnrollRateAll.PerSecond,
		EnrollBurstAll:     int(d.EnrollRateAll.Burst),
		AddrPrefixV4:       d.AddrPrefixV4,
		AddrPrefixV6:       d.AddrPrefixV6,
		ForwardedHeader:    relay.HeaderXForwardedFor,
	}
}

// proxyList is a repeatable flag taking comma-separated CIDRs.
type proxyList struct{ list *[]string }

func (p proxyList) String() string {
	if p.list == nil {
		return ""
	}
	return strings.Join(*p.list, ",")
}

func (p proxyList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*p.list = append(*p.list, s)
		}
	}
	return nil
}

func limitFlags(fs *flag.FlagSet, c *LimitConfig) {
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "serve /metrics, /healthz and /readyz on this address, e.g. 127.0.0.1:9090 (default: nowhere; never on -listen)")
	fs.IntVar(&c.ConnsPerAddr, "conns-per-addr", c.ConnsPerAddr, "connections per client address (IPv4 address or IPv6 /64); more get HTTP 429")
	fs.IntVar(&c.UnauthPerAddr, "unauth-per-addr", c.UnauthPerAddr, "connections not (yet) authenticated per client address, sealed-send and provisioning ones included; more get HTTP 429")
	fs.IntVar(&c.MaxUnauthenticated, "max-unauth", c.MaxUnauthenticated, "connections not (yet) authenticated in all; past it a newcomer closes the oldest of them")
	fs.IntVar(&c.HTTPPerAddr, "http-per-addr", c.HTTPPerAddr, "HTTP connections per client address that are not WebSockets (yet); more are closed as soon as accepted (trusted proxies exempt)")
	fs.BoolVar(&c.RefuseWhenFull, "max-unauth-refuse", false, "past -max-unauth, refuse newcomers (HTTP 503) instead of closing the oldest unauthenticated connection")
	fs.DurationVar(&c.LoginTimeout, "login-timeout", c.LoginTimeout, "close a connection that has not authenticated, provisioned or sealed-sent by then (and a kept-alive HTTP connection idle that long)")
	fs.DurationVar(&c.ProvisionTimeout, "provision-timeout", c.ProvisionTimeout, "close a provisioning connection (a new device waiting for its link approval) this long after it opened")
	fs.DurationVar(&c.SealedIdleTimeout, "sealed-idle-timeout", c.SealedIdleTimeout, "close a sealed-send connection this long after its last sealed send")
	fs.Float64Var(&c.EnrollRateAll, "enroll-rate-all", c.EnrollRateAll, "enrollments and links per second from all clients together")
	fs.IntVar(&c.EnrollBurstAll, "enroll-burst-all", c.EnrollBurstAll, "burst of -enroll-rate-all")
	fs.IntVar(&c.AddrPrefixV4, "addr-prefix-v4", c.AddrPrefixV4, "IPv4 prefix length that makes one client address for the limits")
	fs.IntVar(&c.AddrPrefixV6, "addr-prefix-v6", c.AddrPrefixV6, "IPv6 prefix length that makes one client address for the limits")
	fs.Var(proxyList{&c.TrustedProxies}, "trusted-proxy", "reverse proxy CIDR (repeatable or comma list) whose forwarding header names the client; headers from other peers are ignored")
	fs.StringVar(&c.ForwardedHeader, "forwarded-header", c.ForwardedHeader, "header the trusted proxies set: X-Forwarded-For (rightmost untrusted hop) or Forwarded (RFC 7239 for=)")
}

// parseProxies parses the -trusted-proxy values; an address is its own /32
// or /128.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		errs = append(errs, fmt.Errorf("-trusted-proxy %q: not a CIDR or an address", s))
	}
	return out, errors.Join(errs...)
}

func (c LimitConfig) problems() []error {
	var errs []error
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("-metrics-listen %q: %v", c.MetricsListen, err))
		}
	}
	if c.ConnsPerAddr < 1 || c.UnauthPerAddr < 1 || c.MaxUnauthenticated < 1 || c.HTTPPerAddr < 1 {
		errs = append(errs, errors.New("-conns-per-addr, -unauth-per-addr, -max-unauth and -http-per-addr must be positive"))
	}
	if c.LoginTimeout <= 0 || c.ProvisionTimeout <= 0 || c.SealedIdleTimeout <= 0 {
		errs = append(errs, errors.New("-login-timeout, -provision-timeout and -sealed-idle-timeout must be positive"))
	}
	if c.EnrollRateAll <= 0 || c.EnrollBurstAll < 1 {
		errs = append(errs, errors.New("-enroll-rate-all and -enroll-burst-all must be positive"))
	}
	if c.AddrPrefixV4 < 1 || c.AddrPrefixV4 > 32 {
		errs = append(errs, fmt.Errorf("-addr-prefix-v4 %d: want 1 to 32", c.AddrPrefixV4))
	}
	if c.AddrPrefixV6 < 1 || c.AddrPrefixV6 > 128 {
		errs = append(errs, fmt.Errorf("-addr-prefix-v6 %d: want 1 to 128", c.AddrPrefixV6))
	}
	if _, err := parseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if !strings.EqualFold(c.ForwardedHeader, relay.HeaderXForwardedFor) && !strings.EqualFold(c.ForwardedHeader, relay.HeaderForwarded) {
		errs = append(errs, fmt.Errorf("-forwarded-header %q: want %s or %s", c.ForwardedHeader, relay.HeaderXForwardedFor, relay.HeaderForwarded))
	}
	return errs
}

// apply sets the relay's limits from c (valid).
func (c LimitConfig) apply(rcfg *relay.Config) {
	rcfg.ConnLimits = relay.ConnLimits{PerAddr: c.ConnsPerAddr, PerAddrUnauthenticated: c.UnauthPerAddr, MaxUnauthenticated: c.MaxUnauthenticated, RefuseWhenFull: c.RefuseWhenFull, PerAddrHTTP: c.HTTPPerAddr}
	rcfg.LoginTimeout, rcfg.ProvisionTimeout, rcfg.SealedIdleTimeout = c.LoginTimeout, c.ProvisionTimeout, c.SealedIdleTimeout
	rcfg.EnrollRateAll = relay.Rate{PerSecond: c.EnrollRateAll, Burst: float64(c.EnrollBurstAll)}
	rcfg.AddrPrefixV4, rcfg.AddrPrefixV6 = c.AddrPrefixV4, c.AddrPrefixV6
	rcfg.TrustedProxies, _ = parseProxies(c.TrustedProxies)
	rcfg.ForwardedHeader = relay.HeaderXForwardedFor
	if strings.EqualFold(c.ForwardedHeader, relay.HeaderForwarded) {
		rcfg.ForwardedHeader = relay.HeaderForwarded
	}
}

// exposedPlaintext reports whether addr (a bound listener's address) is
// reachable from other hosts: any address but a loopback one.
func exposedPlaintext(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return true
	}
	return !ap.Addr().Unmap().IsLoopback()
}
