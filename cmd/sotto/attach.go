package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"sotto/client"
	"sotto/client/attach"
	"sotto/internal/safetext"
)

// sendFile uploads path and sends it to user (`sotto send USER --file PATH`).
func sendFile(e *env, c *client.Client, user, path, caption string, viewOnce bool) error {
	m, err := c.SendFile(e.ctx, user, path, client.FileOptions{ViewOnce: viewOnce, Caption: caption,
		Progress: e.progress("upload " + safetext.FileName(attach.SafeName(path)))})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "sent %s (%s) id %s\n", safetext.FileName(m.Attachment.Name), humanBytes(m.Attachment.Size), hex.EncodeToString(m.ID))
	return nil
}

// hasFileFlag reports whether a send command line sends a file (such
// transfers may outlast the one-shot timeout).
func hasFileFlag(args []string) bool {
	for _, a := range args {
		if a == "--file" || a == "-file" || strings.HasPrefix(a, "--file=") || strings.HasPrefix(a, "-file=") {
			return true
		}
	}
	return false
}

// cmdDownload fetches and decrypts the attachment of a message:
//
//	sotto download MSGID [--out PATH | --dir DIR]
//	sotto download --latest USER [--out PATH | --dir DIR]
//
// Files go to --out, or to a free name in --dir (default HOME/attachments,
// HOME being the device's folder). A view-once attachment is written to
// standard output once, never to a file, and its key is then deleted.
func cmdDownload(e *env, args []string) error {
	fs := e.flagSet("download")
	out := fs.String("out", "", "write the file to `PATH`")
	dir := fs.String("dir", "", "save into `DIR` under the sender's file name (default: HOME/attachments)")
	latest := fs.String("latest", "", "the latest attachment received from `USER` instead of MSGID")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if (len(pos) != 1) == (*latest == "") || len(pos) > 1 {
		return errUsage
	}
	var id []byte
	if *latest == "" {
		if id, err = hex.DecodeString(pos[0]); err != nil || len(id) == 0 {
			return fmt.Errorf("download: %q is not a message id (hex, as listed by listen or history --json)", pos[0])
		}
	}
	c, err := e.connect(false, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	if *latest != "" {
		hist, err := c.History(e.ctx, *latest, 0)
		if err != nil {
			return err
		}
		for _, m := range hist {
			if m.Attachment != nil && !m.Outgoing {
				id = m.ID
			}
		}
		if id == nil {
			return fmt.Errorf("download: no attachment from %s", safetext.Name(*latest))
		}
	}
	o := client.DownloadOptions{Out: *out, Dir: *dir, Progress: e.progress("download")}
	if *out == "-" {
		o.Out, o.Stream = "", e.stdout
	}
	path, m, err := c.Download(e.ctx, id, o)
	if m != nil && m.Attachment != nil && m.Attachment.ViewOnce && o.Stream == nil && err != nil && !isViewed(err) {
		// View-once: never to disk; show it on standard output instead.
		o.Stream, o.Out = e.stdout, ""
		_, _, err = c.Download(e.ctx, id, o)
		if err == nil {
			fmt.Fprintf(e.stderr, "view-once attachment shown; it cannot be opened again\n")
		}
		return err
	}
	if err != nil {
		return err
	}
	if path != "" {
		fmt.Fprintf(e.stdout, "saved %s\n", safetext.Line(path))
	}
	return nil
}

func isViewed(err error) bool { return err == client.ErrViewedOnce }

// attachmentText is how the line mode shows an attachment.
func attachmentText(m *client.Message) string {
	a := m.Attachment
	s := fmt.Sprintf("[file %s, %s", safetext.FileName(a.Name), humanBytes(a.Size))
	switch {
	case a.Opened:
		s += ", view-once, opened"
	case a.ViewOnce:
		s += ", view-once"
	}
	if a.Path != "" {
		s += ", saved at " + safetext.Line(a.Path)
	} else if !m.Outgoing && !a.Opened {
		s += ", fetch with: sotto download " + hex.EncodeToString(m.ID)
	}
	s += "]"
	if m.Text != "" {
		s += " " + safetext.Block(m.Text, contPrefix)
	}
	return s
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
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
