package client

import "sotto/client/transport"

// RelayTransport returns how this device reaches its relay: the options it
// was opened with, under the TLS settings it pinned at enrollment (the
// organization's CA, the relay's key pin). Other connections to the relay
// use them too: TURN over TLS for calls (client/call).
func (c *Client) RelayTransport() transport.Options { return c.opts.Transport }
