package safetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds of the contexts that need one.
const (
	MaxName     = 64  // runes of a user or device name, "…" included
	MaxFileName = 128 // runes of a file name shown
	MaxSaveName = 120 // bytes of a file name saved
	tabWidth    = 4   // spaces a tab becomes in a body
	lineMarks   = 4   // combining marks kept in a row on one line
	bodyMarks   = 16  // and in a body
)

// rules say what a context lets through.
type rules struct {
	newline    bool // a newline stays (a body)
	weakBidi   bool // LRM, RLM, ALM and the joiners ZWJ, ZWNJ stay (a body)
	nameSpaces bool // spaces other than U+0020 and blank fillers are escaped (a name)
	marks      int  // combining marks kept in a row
}

var (
	lineCtx = rules{marks: lineMarks}
	nameCtx = rules{nameSpaces: true, marks: lineMarks}
	bodyCtx = rules{newline: true, weakBidi: true, marks: bodyMarks}
)

// Line returns s for one line of text: every control character (newline,
// carriage return and tab included), bidi control, invisible format
// character, line or paragraph separator and byte of invalid UTF-8
// escaped.
func Line(s string) string { return clean(s, lineCtx, 0) }

// Name returns s for a user or device name: as Line, and also spaces other
// than U+0020 and blank fillers (Hangul fillers, braille blank) escaped,
// so that no two names that look the same differ; at most MaxName runes,
// cut with "…".
func Name(s string) string { return clean(s, nameCtx, MaxName) }

// FileName returns s for showing a file name: as Line, at most
// MaxFileName runes, cut with "…". To save a file use SaveName.
func FileName(s string) string { return clean(s, lineCtx, MaxFileName) }

// Body returns s for multi-line message text: as Line, except that a
// newline (and CR LF) stays a newline, a tab becomes spaces, and the weak
// bidi marks (LRM, RLM, ALM) and the joiners (ZWJ, ZWNJ) that right-to-left
// scripts and emoji need stay. It has no length bound.
func Body(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return clean(s, bodyCtx, 0)
}

// Block returns Body(s) with prefix put before every line after the first,
// for a message shown after a header on the same line: no line of the
// message can start at the left margin and pass for one of the program's.
// prefix should be visible (e.g. "  | ") and must itself be clean.
func Block(s, prefix string) string {
	return strings.ReplaceAll(Body(s), "\n", "\n"+prefix)
}

// Clean reports whether Line(s) == s.
func Clean(s string) bool { return Line(s) == s }

// clean escapes what ctx does not let through and cuts the result at limit
// runes (0: no bound), never inside an escape.
func clean(s string, ctx rules, limit int) string {
	if fast(s, ctx, limit) {
		return s
	}
	var pieces []string
	total, marks := 0, 0
	base := false // a character a combining mark may sit on precedes
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		mark := isMark(r)
		var piece string
		switch {
		case r == utf8.RuneError && size == 1:
			piece = fmt.Sprintf(`\x%02x`, s[i-1])
		case r == '\n' && ctx.newline:
			piece = "\n"
		case r == '\t' && ctx.newline:
			piece = strings.Repeat(" ", tabWidth)
		case mark:
			// Marks stay on the text's own characters, a few in a row:
			// not on what the program printed before it, nor piled up
			// over the lines around it.
			marks++
			if !base || marks > ctx.marks {
				piece = escape(r)
			} else {
				piece = string(r)
			}
		case forbidden(r, ctx):
			piece = escape(r)
		default:
			piece = string(r)
		}
		if !mark {
			marks = 0
			base = piece != "\n"
		}
		pieces = append(pieces, piece)
		total += utf8.RuneCountInString(piece)
	}
	var b strings.Builder
	if limit <= 0 || total <= limit {
		for _, p := range pieces {
			b.WriteString(p)
		}
		return b.String()
	}
	n := 0
	for _, p := range pieces {
		k := utf8.RuneCountInString(p)
		if n+k > limit-1 {
			break
		}
		b.WriteString(p)
		n += k
	}
	b.WriteString("…")
	return b.String()
}

func isMark(r rune) bool { return unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) }

// fast reports whether s needs nothing done: printable ASCII only (a
// newline too in a body), within the bound.
func fast(s string, ctx rules, limit int) bool {
	if limit > 0 && len(s) > limit {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f || c == '\n' && ctx.newline {
			continue
		}
		return false
	}
	return true
}

// escape is the visible form of a neutralized rune.
func escape(r rune) string {
	switch {
	case r < 0x80:
		return fmt.Sprintf(`\x%02x`, r)
	case r <= 0xffff:
		return fmt.Sprintf(`\u%04x`, r)
	default:
		return fmt.Sprintf(`\U%08x`, r)
	}
}

// forbidden reports whether r is escaped in ctx (combining marks and
// invalid bytes are handled by clean).
func forbidden(r rune, ctx rules) bool {
	switch {
	case r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f: // C0, DEL, C1
		return true
	case r == 0x2028 || r == 0x2029: // line and paragraph separators
		return true
	case r >= 0xe0000 && r <= 0xe007f: // tag characters
		return true
	case r == 0x200c || r == 0x200d || r == 0x200e || r == 0x200f || r == 0x061c:
		return !ctx.weakBidi // ZWNJ, ZWJ, LRM, RLM, ALM
	case unicode.Is(unicode.Cf, r):
		// Bidi embeddings, overrides and isolates (U+202A..U+202E,
		// U+2066..U+2069), zero-width space and word joiner, BOM, soft
		// hyphen, interlinear annotation, invisible operators...
		return true
	case r == 0x115f || r == 0x1160 || r == 0x3164 || r == 0xffa0 || r == 0x2800 || r == 0x180e:
		return ctx.nameSpaces // blank fillers that render as nothing
	case unicode.Is(unicode.Zs, r) && r != ' ':
		return ctx.nameSpaces // look-alike spaces
	}
	return false
}

// Forbidden reports whether the rune r can never appear in the output of
// Line or Name (a test and fuzz helper; a body also lets newline, LRM, RLM,
// ALM, ZWJ and ZWNJ through).
func Forbidden(r rune) bool { return forbidden(r, lineCtx) }

// SaveName returns name reduced to a plain base name that is safe to
// create in a download folder and to show: only what follows the last '/'
// or '\'; every control, bidi and invisible format character, look-alike
// space, ':' and byte of invalid UTF-8 replaced by '_' (so "photo\u202egnp.exe"
// is saved as "photo_gnp.exe", not shown as "photoexe.png"); no leading
// dot, dash or space (no hidden file, nothing a shell takes for an
// option), no trailing dot or space; at most MaxSaveName bytes;
// "attachment" when nothing is left. It is idempotent, and never returns
// "." or "..".
func SaveName(name string) string {
	// Each pass only shortens the name or turns characters into '_', so
	// a fixed point comes within a few; it is what makes SaveName
	// idempotent (a trim can bring a combining mark to the front).
	for range 8 {
		next := saveOnce(name)
		if next == name {
			break
		}
		name = next
	}
	return name
}

func saveOnce(name string) string {
	name = strings.ReplaceAll(name, `\`, "/")
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	name = strings.TrimLeft(name, ". -")
	var b strings.Builder
	marks := 0
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		i += size
		if isMark(r) {
			if marks++; marks > lineMarks || b.Len() == 0 {
				r = '_'
			}
		} else {
			marks = 0
		}
		if r == utf8.RuneError && size == 1 || r == ':' || forbidden(r, nameCtx) {
			r = '_'
		}
		b.WriteRune(r)
	}
	name = strings.TrimRight(b.String(), ". ")
	if len(name) > MaxSaveName {
		name = name[:MaxSaveName]
		for !utf8.ValidString(name) {
			name = name[:len(name)-1]
		}
	}
	if name == "" {
		return "attachment"
	}
	return name
}
