package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"sotto/agent/api"
	"sotto/client/attach"
)

// transferBar shows the progress of a transfer the agent runs (a file
// sent or downloaded) as a bar on stderr when it is a terminal: it names
// the transfer, and draws the agent's progress events for that name. It
// returns the name to put in the request ("": no bar) and a function
// that stops the bar.
func (e *env) transferBar(s *session, label string) (string, func()) {
	bar := e.progress(label)
	if bar == nil {
		return "", func() {}
	}
	ctx, cancel := context.WithCancel(e.ctx)
	st, err := s.api.Events(ctx, false, 0)
	if err != nil {
		cancel()
		return "", func() {}
	}
	name := rand.Text()
	feed, stopFeed := eventFeed(ctx, st)
	done := make(chan struct{})
	go func() {
		// Owned by the returned stop, which waits for it.
		defer close(done)
		for ev := range feed {
			if p := ev.Progress; ev.Type == api.EventProgress && p != nil && p.Transfer == name {
				bar(p.Done, p.Total)
			}
		}
	}()
	return name, func() {
		cancel()
		stopFeed()
		<-done
	}
}

// progress returns a progress bar on stderr when it is a terminal, else nil.
func (e *env) progress(label string) attach.Progress {
	f, ok := e.stderr.(*os.File)
	if !ok {
		return nil
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return newBar(f, label)
}

func newBar(w io.Writer, label string) attach.Progress {
	var mu sync.Mutex
	var last time.Time
	start := time.Now()
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if done < total && now.Sub(last) < 100*time.Millisecond {
			return
		}
		last = now
		const width = 30
		frac := 1.0
		if total > 0 {
			frac = float64(done) / float64(total)
		}
		n := int(frac * width)
		rate := float64(done) / max(now.Sub(start).Seconds(), 1e-3)
		fmt.Fprintf(w, "\r%s [%s%s] %3.0f%% %s/%s %s/s ", label, strings.Repeat("=", n), strings.Repeat(" ", width-n),
			frac*100, humanBytes(done), humanBytes(total), humanBytes(int64(rate)))
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}
