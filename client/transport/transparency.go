package transport

import (
	"context"

	"sotto/wire"
)

// TransparencyHead returns the relay's newest signed key log head.
func (c *Conn) TransparencyHead(ctx context.Context) (*wire.TransparencyHead, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_TransparencyHead{TransparencyHead: &wire.TransparencyHeadRequest{}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetTransparencyHead())
}

// TransparencyConsistency returns the proof that the key log of second
// leaves extends the one of first leaves.
func (c *Conn) TransparencyConsistency(ctx context.Context, first, second uint64) (*wire.TransparencyConsistency, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_TransparencyConsistency{
		TransparencyConsistency: &wire.TransparencyConsistencyRequest{First: first, Second: second}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetTransparencyConsistency())
}

// TransparencyLeaves returns up to count key log leaves from start.
func (c *Conn) TransparencyLeaves(ctx context.Context, start uint64, count uint32) (*wire.TransparencyLeaves, error) {
	resp, err := c.Do(ctx, &wire.Request{Body: &wire.Request_TransparencyLeaves{
		TransparencyLeaves: &wire.TransparencyLeavesRequest{Start: start, Count: count}}})
	if err != nil {
		return nil, err
	}
	return body(resp.GetTransparencyLeaves())
}
