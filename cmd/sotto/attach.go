package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sotto/agent/api"
	"sotto/client"
	"sotto/internal/safetext"
)

// sendFile sends the file at path to user (`sotto send USER --file
// PATH`); the agent reads it, so it is named by its absolute path.
func sendFile(e *env, s *session, user, path, caption string, viewOnce bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return err
	}
	transfer, stop := e.transferBar(s, "upload "+safetext.FileName(filepath.Base(abs)))
	a, err := s.api.SendFile(e.ctx, user, api.FileRequest{Path: abs, Caption: caption, ViewOnce: viewOnce, Transfer: transfer})
	stop()
	if err != nil {
		return agentError(e, err)
	}
	noteDowngrade(e, a, user)
	m := a.Message
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
	s, err := e.session(true)
	if err != nil {
		return err
	}
	defer s.close()
	if *latest != "" {
		hist, err := s.api.History(e.ctx, *latest, 0)
		if err != nil {
			return agentError(e, err)
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
	if *out == "-" {
		return streamAttachment(e, s, id, false)
	}
	req := api.DownloadRequest{}
	for _, p := range []struct{ in, dst *string }{{out, &req.Out}, {dir, &req.Dir}} {
		if *p.in != "" {
			if *p.dst, err = filepath.Abs(*p.in); err != nil {
				return err
			}
		}
	}
	transfer, stop := e.transferBar(s, "download")
	req.Transfer = transfer
	a, err := s.api.Download(e.ctx, id, req)
	stop()
	if api.IsKind(err, api.KindViewOnce) {
		// View-once: never to disk; show it on standard output instead.
		return streamAttachment(e, s, id, true)
	}
	if err != nil {
		return agentError(e, err)
	}
	if a.Path != "" {
		fmt.Fprintf(e.stdout, "saved %s\n", safetext.Line(a.Path))
	}
	return nil
}

// streamAttachment writes the attachment of message id to standard output
// (a view-once one: its one opening).
func streamAttachment(e *env, s *session, id []byte, viewOnce bool) error {
	if isTerminal(e.stdout) {
		// A file's bytes on a terminal are its escape sequences, and a
		// view-once file's one opening would be spent on them.
		what := "a file's bytes"
		if viewOnce {
			what = "a view-once file (it opens only once)"
		}
		return fmt.Errorf("download: will not write %s to the terminal: pipe it into a viewer (sotto download %x | VIEWER) or redirect it", what, id)
	}
	rc, err := s.api.Content(e.ctx, id)
	if err != nil {
		return agentError(e, err)
	}
	defer rc.Close()
	if _, err := io.Copy(e.stdout, rc); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if viewOnce {
		fmt.Fprintf(e.stderr, "view-once attachment shown; it cannot be opened again\n")
	}
	return nil
}

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
