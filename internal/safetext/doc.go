// Package safetext neutralizes untrusted text before a person sees it:
// message bodies, user and device names, file names, captions, notices and
// error text that quotes what a peer or the relay sent.
//
// It shows, rather than drops, what it neutralizes, as Go-style escapes
// made of printable ASCII: a control character, DEL or a byte of invalid
// UTF-8 as \xNN (so ESC, which starts every ANSI, CSI, OSC and DCS
// sequence, is \x1b, and what follows it is plain text); a C1 control (the
// 8-bit introducers of those sequences, U+0080..U+009F) as \u009b; a bidi
// control, an invisible format character, a line or paragraph separator or
// a tag character as \u202e or \U000e0041. An attacker who types such an
// escape literally gains nothing: it is as harmless as the character it
// names. Text that needs no neutralizing comes back unchanged, and every
// function is idempotent.
//
// One function per context: Line for one line of text (captions, a
// notice's first line, error text), Name for user and device names (Line,
// plus no look-alike spaces or blank fillers, and a bounded length),
// FileName for showing a file name, Body and Block for multi-line message
// text (a newline stays a newline, and Block indents every line after the
// first so that none can pass for a line of the program's own), and
// SaveName for the name a received file is saved under.
//
// It does not judge look-alike letters from other scripts (a Cyrillic "а"
// in "alice"): names are checked against keys, not by eye, and safety
// numbers are what a person compares.
package safetext
