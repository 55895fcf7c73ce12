package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// The API's two server-sent-event streams (GET /v1/events, GET
// /v1/webcalls/events) share this: the response header, the event and
// comment framing, and the loop that writes each value as it comes, pings
// an idle stream, and ends with the request, the agent, or the channel.

// pingEvery is how often an idle event stream gets a comment line.
const pingEvery = 15 * time.Second

// sse writes one server-sent-events response.
type sse struct {
	w  http.ResponseWriter
	fl http.Flusher
}

// startSSE writes the stream's header (an error answer when w cannot
// stream).
func startSSE(w http.ResponseWriter) (*sse, bool) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, errors.New("agent: streaming unsupported"))
		return nil, false
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, fl: fl}, true
}

// event writes one event: its id line when id is not "", its name, and v
// as JSON on one data line.
func (s *sse) event(id, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if id != "" {
		_, err = fmt.Fprintf(s.w, "id: %s\nevent: %s\ndata: %s\n\n", id, name, b)
	} else {
		_, err = fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b)
	}
	return err
}

// comment writes a comment line (ignored by EventSource).
func (s *sse) comment(text string) error {
	_, err := io.WriteString(s.w, ": "+text+"\n\n")
	return err
}

// stream writes each value of ch with write and flushes it, pings every
// pingEvery, and returns when ctx ends, ch is closed (a subscriber too slow
// to read, or the publisher closing), a write fails, or stop is closed;
// then what was already queued in ch goes out first.
func stream[T any](ctx context.Context, s *sse, ch <-chan T, stop <-chan struct{}, write func(T) error) {
	s.fl.Flush()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		select {
		case v, ok := <-ch:
			if !ok || write(v) != nil {
				return
			}
			s.fl.Flush()
		case <-ping.C:
			if s.comment("ping") != nil {
				return
			}
			s.fl.Flush()
		case <-ctx.Done():
			return
		case <-stop:
			for {
				select {
				case v, ok := <-ch:
					if !ok || write(v) != nil {
						return
					}
				default:
					s.fl.Flush()
					return
				}
			}
		}
	}
}
