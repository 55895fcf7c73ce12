package relay

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"sotto/wire"
)

// Group handshake messages larger than a frame.
//
// A commit adding hundreds of members carries their KeyPackages, and its
// Welcome and the GroupInfo each carry the ratchet tree (about 0.7 KB a
// leaf with org-certified credentials): past about 400 members they no
// longer fit in one 256 KiB frame. The client then sends the encoded
// GroupCommitRequest in parts (GroupUploadRequest), each in a frame,
// into an upload held in the relay's memory, and commits it by its id;
// members read a stored message above GroupInlineMax in parts
// (GroupReadRequest) instead of finding it in their fetch answer.
//
// Every size is bounded: a part by GroupPartMax, an upload by
// MaxGroupHandshake, all uploads in progress together by
// maxGroupUploadBytes (past it a new upload is refused RATE_LIMITED), a
// device has one upload at a time (a new id replaces the last) and an
// upload idle for groupUploadIdle is dropped. Nothing of an upload is
// stored before its commit is: a relay that restarts mid-upload loses
// only the parts, and the client sends the commit again.

const (
	maxGroupUploadBytes = 256 << 20
	groupUploadIdle     = 2 * time.Minute
	maxGroupUploadID    = 32
)

// groupUploads are the uploads in progress, one per device.
type groupUploads struct {
	mu       sync.Mutex
	m        map[DeviceAddr]*groupUpload
	reserved int64 // the totals of the uploads in m
}

type groupUpload struct {
	id      []byte
	total   int64
	buf     []byte
	touched time.Time
}

// dropLocked forgets dev's upload. Call with gu.mu held.
func (gu *groupUploads) dropLocked(dev DeviceAddr) {
	if u := gu.m[dev]; u != nil {
		gu.reserved -= u.total
		delete(gu.m, dev)
	}
}

// expire drops the uploads idle since before.
func (gu *groupUploads) expire(before time.Time) {
	gu.mu.Lock()
	defer gu.mu.Unlock()
	for d, u := range gu.m {
		if u.touched.Before(before) {
			gu.dropLocked(d)
		}
	}
}

// put adds one part to dev's upload and returns the bytes received. A
// part sent again (its answer was lost) is answered again.
func (gu *groupUploads) put(dev DeviceAddr, r *wire.GroupUploadRequest, now time.Time) (uint64, error) {
	if len(r.UploadId) == 0 || len(r.UploadId) > maxGroupUploadID {
		return 0, badRequest("upload id must be 1 to %d bytes", maxGroupUploadID)
	}
	if r.Total == 0 || r.Total > MaxGroupHandshake {
		return 0, fmt.Errorf("%w: an upload is at most %d bytes", ErrTooLarge, MaxGroupHandshake)
	}
	if len(r.Data) == 0 || len(r.Data) > GroupPartMax {
		return 0, badRequest("a part is 1 to %d bytes", GroupPartMax)
	}
	if r.Offset > r.Total || uint64(len(r.Data)) > r.Total-r.Offset {
		return 0, badRequest("part past the upload's end")
	}
	gu.expire(now.Add(-groupUploadIdle))
	gu.mu.Lock()
	defer gu.mu.Unlock()
	u := gu.m[dev]
	if u == nil || !bytes.Equal(u.id, r.UploadId) || u.total != int64(r.Total) {
		if r.Offset != 0 {
			return 0, fmt.Errorf("%w: no such upload (it may have expired): start again", ErrNotFound)
		}
		gu.dropLocked(dev)
		if gu.reserved+int64(r.Total) > maxGroupUploadBytes {
			return 0, &RateError{RetryAfter: time.Second}
		}
		u = &groupUpload{id: bytes.Clone(r.UploadId), total: int64(r.Total)}
		if gu.m == nil {
			gu.m = make(map[DeviceAddr]*groupUpload)
		}
		gu.m[dev] = u
		gu.reserved += u.total
	}
	u.touched = now
	have := uint64(len(u.buf))
	switch {
	case r.Offset == have:
		u.buf = append(u.buf, r.Data...)
	case r.Offset+uint64(len(r.Data)) <= have && bytes.Equal(u.buf[r.Offset:r.Offset+uint64(len(r.Data))], r.Data):
		// Sent again.
	default:
		return have, badRequest("part at %d, the upload has %d bytes", r.Offset, have)
	}
	return uint64(len(u.buf)), nil
}

// take removes dev's complete upload id and returns its bytes.
func (gu *groupUploads) take(dev DeviceAddr, id []byte) ([]byte, error) {
	gu.mu.Lock()
	defer gu.mu.Unlock()
	u := gu.m[dev]
	if u == nil || !bytes.Equal(u.id, id) {
		return nil, fmt.Errorf("%w: no such upload (it may have expired): send the parts again", ErrNotFound)
	}
	if int64(len(u.buf)) != u.total {
		return nil, badRequest("upload incomplete: %d of %d bytes", len(u.buf), u.total)
	}
	gu.dropLocked(dev)
	return u.buf, nil
}

// groupPartRoutes are the requests of large handshake messages (wire
// fields 170-179).
func groupPartRoutes() []route {
	return []route{
		{&wire.Request_GroupUpload{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			if _, err := c.s.groupStore(); err != nil {
				return err
			}
			n, err := c.s.groupUploads.put(c.dev, req.GetGroupUpload(), c.s.cfg.Now())
			if err == nil {
				resp.Body = &wire.Response_GroupUpload{GroupUpload: &wire.GroupUploadResponse{Received: n}}
			}
			return err
		}},
		{&wire.Request_GroupRead{}, authedOnly, func(c *conn, req *wire.Request, resp *wire.Response) error {
			r, err := c.groupRead(req.GetGroupRead())
			if err == nil {
				resp.Body = &wire.Response_GroupRead{GroupRead: r}
			}
			return err
		}},
	}
}

// uploadedCommit replaces a commit request naming an upload by the
// request uploaded.
func (c *conn) uploadedCommit(r *wire.GroupCommitRequest) (*wire.GroupCommitRequest, error) {
	b, err := c.s.groupUploads.take(c.dev, r.UploadId)
	if err != nil {
		return nil, err
	}
	var inner wire.GroupCommitRequest
	if err := proto.Unmarshal(b, &inner); err != nil {
		return nil, badRequest("the upload is not a commit request")
	}
	if len(inner.UploadId) > 0 {
		return nil, badRequest("an uploaded commit request names an upload")
	}
	return &inner, nil
}

func (c *conn) groupRead(r *wire.GroupReadRequest) (*wire.GroupReadResponse, error) {
	gs, err := c.s.groupStore()
	if err != nil {
		return nil, err
	}
	if err := checkGroupID(r.GroupId); err != nil {
		return nil, err
	}
	if r.Length == 0 || r.Length > GroupPartMax || r.Offset > MaxGroupHandshake {
		return nil, badRequest("read 1 to %d bytes within %d", GroupPartMax, MaxGroupHandshake)
	}
	data, total, epoch, err := gs.ReadGroup(c.ctx, c.dev, r.GroupId, r.Seq, r.Offset, int(r.Length))
	if err != nil {
		return nil, err
	}
	return &wire.GroupReadResponse{Data: data, Total: total, Epoch: epoch}, nil
}
