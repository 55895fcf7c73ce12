package main

import (
	"crypto/tls"
	"errors"
)

// acmeTLS returns a TLS configuration that obtains certificates for
// cfg.ACMEDomain.
func acmeTLS(cfg Config) (*tls.Config, error) {
	return nil, errors.New("sottod: -acme-domain is not available in this build")
}
