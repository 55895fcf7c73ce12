package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"sotto/wire"
)

// Sealed sends, the path clients use once contacts have talked: each
// device uploads an unidentified access key on its authenticated
// connection (SetAccessKey, as a client does on every connect), and
// opens a second connection that never logs in, on which its sends go as
// SealedSend with the recipient's access key. The relay stores the
// envelopes with no sender; the recipient reads them on its
// authenticated connection. -authenticated sends SendMessage on the
// authenticated connection instead.

// setupReqID is the request id of setup requests on a device's
// authenticated connection (the run's own ids count from 1).
const setupReqID = 1 << 62

// sealedSetup gives every device an access key and a sealed-send
// connection; it returns the keys, by device.
func sealedSetup(ctx context.Context, cfg Config, devs []*loadDev, out io.Writer) ([][]byte, error) {
	keys := make([][]byte, len(devs))
	start := time.Now()
	var (
		next    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(devs) || ctx.Err() != nil {
					return
				}
				k, err := sealedDevice(ctx, cfg, devs[i])
				if err != nil {
					errOnce.Do(func() { first = fmt.Errorf("sealed setup of device %d: %w", i, err) })
					return
				}
				keys[i] = k
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	fmt.Fprintf(out, "set access keys and opened %d sealed-send connections in %v\n", len(devs), time.Since(start).Round(time.Millisecond))
	return keys, nil
}

// sealedDevice uploads d's access key and opens its sealed-send connection.
func sealedDevice(ctx context.Context, cfg Config, d *loadDev) ([]byte, error) {
	key := randBytes(wire.AccessKeySize)
	if err := setAccessKey(ctx, d.ws, key); err != nil {
		return nil, err
	}
	c, err := dialSetup(ctx, cfg.Relay, 16<<10)
	if err != nil {
		return nil, err
	}
	d.sws = c.ws
	return key, nil
}

// setAccessKey uploads key on the authenticated connection ws, before its
// reader runs.
func setAccessKey(ctx context.Context, ws *wsConn, key []byte) error {
	stop := context.AfterFunc(ctx, func() { ws.c.Close() })
	defer stop()
	if err := ws.writeFrame(&wire.Frame{Kind: &wire.Frame_Request{Request: &wire.Request{Id: setupReqID,
		Body: &wire.Request_SetAccessKey{SetAccessKey: &wire.SetAccessKeyRequest{AccessKey: key}}}}}); err != nil {
		return err
	}
	for {
		f, err := ws.readFrame()
		if err != nil {
			return err
		}
		r := f.GetResponse()
		if r == nil || r.Id != setupReqID {
			continue // pushes (a challenge, QueueEmpty)
		}
		if r.Code != wire.ErrorCode_OK {
			return &RelayError{Code: r.Code, Message: r.Message}
		}
		return nil
	}
}
