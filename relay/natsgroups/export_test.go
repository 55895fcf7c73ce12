package natsgroups

import (
	"context"
	"errors"
)

// ErrCrash is what a commit "crashed" after its commit point returns.
var ErrCrash = errors.New("natsgroups test: crash after the commit point")

// CrashAfterCommitPoint makes every commit and send of s stop right after
// its head is written, before anything is materialized.
func (s *Store) CrashAfterCommitPoint(on bool) {
	s.crashAfterCommit = nil
	if on {
		s.crashAfterCommit = func() error { return ErrCrash }
	}
}

// Pending returns the group's head entry as stored.
func (s *Store) Pending(ctx context.Context, gid []byte) ([]byte, error) {
	r, err := s.kv.Get(ctx, headKey(gid))
	if err != nil {
		return nil, err
	}
	h, err := decodeHead(r.Value())
	if err != nil {
		return nil, err
	}
	return h.Pending, nil
}

// MaterializeLate materializes an entry read earlier with Pending, as a
// writer stalled between its commit point and its materialization would.
func (s *Store) MaterializeLate(ctx context.Context, gid, pending []byte) error {
	e, err := decodeEntry(pending)
	if err != nil {
		return err
	}
	return s.materialize(ctx, gid, e)
}
