package client

import (
	"context"
	"errors"
	"time"
)

// Backoff bounds of Run's reconnection.
const (
	reconnectMin = time.Second
	reconnectMax = 30 * time.Second
)

// ConnState is what Run reports about the relay connection.
type ConnState struct {
	Connected bool
	// Err is why a connection attempt failed or the connection ended
	// (nil when it opened, or when the relay closed it cleanly).
	Err error
	// Idle is set once the backlog queued at the relay when the
	// connection opened was processed (Client.Idle).
	Idle bool
}

// Run keeps the device connected to the relay until ctx ends: it connects
// with co, and when the connection ends it stops the receive loop (which
// emits what it still processes before Run goes on), then reconnects,
// backing off from 1 s to 30 s between failed attempts. It reports each
// change to state (nil: none) from its own goroutine. It returns nil when
// ctx ends, ErrRevoked when the device was removed from its account (or
// wiped by an order, which revokes it), and ErrLocked when the client is
// locked (Lock): Run again after Unlock.
func (c *Client) Run(ctx context.Context, co ConnectOptions, state func(ConnState)) error {
	report := func(s ConnState) {
		if state != nil {
			state(s)
		}
	}
	defer c.Disconnect()
	backoff := reconnectMin
	for {
		err := c.Connect(ctx, co)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrRevoked), errors.Is(err, ErrLocked):
			report(ConnState{Err: err})
			return err
		case err != nil:
			report(ConnState{Err: err})
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, reconnectMax)
			continue
		}
		backoff = reconnectMin
		report(ConnState{Connected: true})
		idle := c.Idle()
		done := c.Done()
	connected:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-idle:
				idle = nil
				report(ConnState{Connected: true, Idle: true})
			case <-done:
				break connected
			}
		}
		// The receive loop may still be emitting what it took before the
		// connection ended (a wipe order ends the connection before its
		// event): Disconnect waits for it.
		c.Disconnect()
		if c.Locked() {
			report(ConnState{Err: ErrLocked})
			return ErrLocked
		}
		report(ConnState{Err: errors.New("client: connection to the relay lost")})
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}
