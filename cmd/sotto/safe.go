package main

import (
	"sotto/client"
	"sotto/internal/safetext"
)

// Everything a peer, an organization document or the relay wrote reaches
// the terminal through sotto/internal/safetext: names through Name, file
// names through FileName, one-line text through Line, message text through
// Block (line mode, each further line behind contPrefix) or Body (--json),
// and error text, which may quote the relay, through errText. The string
// fields of --json output are sanitized the same way, since JSON escaping
// stops control characters but not bidi or invisible ones: a consumer that
// shows a field shows what the line mode would.

// contPrefix starts every line of a message after its first, so that no
// line of a message can pass for a line of sotto's own.
const contPrefix = "    | "

// errText is an error's text for the terminal: it may quote what the relay
// or a peer sent.
func errText(err error) string { return safetext.Block(err.Error(), contPrefix) }

// jsonAttachment returns a copy of a for --json, its strings sanitized.
// The name is for display; `sotto download` saves the file under
// safetext.SaveName of it.
func jsonAttachment(a *client.Attachment) *client.Attachment {
	if a == nil {
		return nil
	}
	c := *a
	c.Name = safetext.FileName(a.Name)
	c.ContentType = safetext.Line(a.ContentType)
	c.Path = safetext.Line(a.Path)
	return &c
}
