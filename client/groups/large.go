package groups

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// Handshake messages larger than a relay frame (relay/groupparts.go). A
// commit adding hundreds of members, and its Welcome and GroupInfo (each
// carrying the ratchet tree, ~0.7 KB a leaf), pass a frame's 256 KiB at
// about 400 members: the commit request is then sent in parts and
// committed by reference, and members read a large stored message in
// parts. The relay bounds the same sizes.
const (
	// frameBudget is the largest commit request sent in one frame.
	frameBudget = wire.MaxFrameSize - 1024
	// partSize is the relay's largest part (relay.GroupPartMax).
	partSize = 192 << 10
	// maxHandshake is the relay's largest upload (relay.MaxGroupHandshake):
	// a group of 10,000 org-certified members fits.
	maxHandshake = 48 << 20
)

// ErrTooLarge: the commit request (the commit, its Welcome and the
// GroupInfo, both of which carry the ratchet tree) is larger than the
// relay takes, even in parts.
var ErrTooLarge = errors.New("groups: the group is too large for a commit the relay takes")

// fitHandshake drops the GroupInfo (no external joins for this epoch)
// from a commit request larger than the relay takes, and refuses one
// that still is.
func fitHandshake(req *wire.GroupCommitRequest) error {
	if proto.Size(req) <= maxHandshake {
		return nil
	}
	req.GroupInfo = nil
	if proto.Size(req) <= maxHandshake {
		return nil
	}
	return fmt.Errorf("%w (%d bytes)", ErrTooLarge, proto.Size(req))
}

// sendCommit sends req, in parts when it does not fit in one frame.
func sendCommit(ctx context.Context, r Relay, req *wire.GroupCommitRequest) (*wire.GroupCommitResponse, error) {
	if proto.Size(req) <= frameBudget {
		return r.GroupCommit(ctx, req)
	}
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	if len(b) > maxHandshake {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, len(b))
	}
	id := randomID()
	for off := 0; off < len(b); {
		end := min(off+partSize, len(b))
		resp, err := r.GroupUpload(ctx, &wire.GroupUploadRequest{UploadId: id, Total: uint64(len(b)), Offset: uint64(off), Data: b[off:end]})
		if err != nil {
			return nil, fmt.Errorf("groups: uploading the commit: %w", err)
		}
		if resp.Received != uint64(end) {
			return nil, fmt.Errorf("groups: the relay has %d bytes of the commit's upload, not %d", resp.Received, end)
		}
		off = end
	}
	return r.GroupCommit(ctx, &wire.GroupCommitRequest{UploadId: id})
}

// errChanged: the GroupInfo changed (a commit) while it was being read.
var errChanged = errors.New("groups: the group changed during the read")

// readLarge reads, in parts, the stored message seq of a group (seq 0:
// its GroupInfo) of size bytes, which the relay left out of its answer.
func readLarge(ctx context.Context, r Relay, group []byte, seq, size uint64) ([]byte, error) {
	if size > maxHandshake {
		return nil, fmt.Errorf("groups: a group message of %d bytes is larger than any the relay takes", size)
	}
	buf := make([]byte, 0, size)
	var epoch uint64
	for uint64(len(buf)) < size {
		resp, err := r.GroupRead(ctx, &wire.GroupReadRequest{GroupId: group, Seq: seq, Offset: uint64(len(buf)),
			Length: uint32(min(partSize, size-uint64(len(buf))))})
		if err != nil {
			return nil, fmt.Errorf("groups: reading a large group message: %w", err)
		}
		if len(buf) == 0 {
			epoch = resp.Epoch
		}
		if resp.Total != size || resp.Epoch != epoch {
			if seq == 0 {
				return nil, errChanged
			}
			return nil, fmt.Errorf("groups: the relay changed group message %d while it was read", seq)
		}
		if len(resp.Data) == 0 || uint64(len(resp.Data)) > size-uint64(len(buf)) {
			return nil, fmt.Errorf("groups: the relay answered %d bytes at %d of %d", len(resp.Data), len(buf), size)
		}
		buf = append(buf, resp.Data...)
	}
	return buf, nil
}
