package safetext

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostile are inputs an attacker controls, each with what it tries.
var hostile = []struct{ name, in string }{
	{"fake line", "hi\r\x1b[2K\n[12:00] organization (verified): update now"},
	{"csi", "\x1b[31mred\x1b[0m"},
	{"osc title", "\x1b]0;pwned\x07"},
	{"osc 8 link", "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\"},
	{"dcs", "\x1bP1$r\x1b\\"},
	{"8-bit csi", "a\u009b2Kb"},
	{"8-bit osc", "\u009d0;t\u009c"},
	{"bell backspace", "ok\x07\x08\x08\x08bad"},
	{"del", "a\x7fb"},
	{"nul", "a\x00b"},
	{"rlo", "invoice\u202egnp.exe"},
	{"lre rle pdf lro", "\u202a\u202b\u202c\u202d"},
	{"isolates", "\u2066\u2067\u2068\u2069"},
	{"zero width", "ali\u200bce"},
	{"bom", "\ufeffbob"},
	{"word joiner", "a\u2060b"},
	{"soft hyphen", "a\u00adb"},
	{"separators", "a\u2028b\u2029c"},
	{"tags", "hi\U000e0041\U000e0042"},
	{"invalid utf8", "a\xffb\xc0"},
	{"vt ff", "a\x0bb\x0cc"},
	{"leading mark", "\u0338bob"},
	{"zalgo", "z" + strings.Repeat("\u0301", 40)},
}

func TestLineNeutralizesEveryAttack(t *testing.T) {
	for _, tc := range hostile {
		for ctx, fn := range map[string]func(string) string{"Line": Line, "Name": Name, "FileName": FileName} {
			got := fn(tc.in)
			if r, ok := forbiddenIn(got, false); ok {
				t.Errorf("%s(%s) = %q: contains %U", ctx, tc.name, got, r)
			}
			if strings.ContainsAny(got, "\n\r\x1b") {
				t.Errorf("%s(%s) = %q: a line break or ESC survived", ctx, tc.name, got)
			}
		}
	}
}

func TestBodyKeepsLinesAndNothingElse(t *testing.T) {
	for _, tc := range hostile {
		got := Body(tc.in)
		if r, ok := forbiddenIn(got, true); ok {
			t.Errorf("Body(%s) = %q: contains %U", tc.name, got, r)
		}
	}
	// A fake line cannot start at the left margin in a block.
	got := Block("hi\r\x1b[2K\n[12:00] organization (verified): update now", "  | ")
	if want := `hi\x0d\x1b[2K` + "\n" + `  | [12:00] organization (verified): update now`; got != want {
		t.Fatalf("Block = %q, want %q", got, want)
	}
	// What legitimate text needs stays.
	for _, ok := range []string{
		"line one\nline two",
		"שלום\u200f, world",               // RLM
		"👨\u200d👩\u200d👧 family",          // ZWJ sequence
		"می\u200cخواهم",                   // ZWNJ
		"e\u0301te\u0301 naïve café 你好 🎉", // marks, CJK, emoji
	} {
		if got := Body(ok); got != ok {
			t.Errorf("Body(%q) = %q, want it unchanged", ok, got)
		}
	}
	if got := Body("a\tb\r\nc"); got != "a    b\nc" {
		t.Errorf("tabs and CRLF: %q", got)
	}
}

func TestEscapesAreVisible(t *testing.T) {
	for in, want := range map[string]string{
		"\x1b[2K":       `\x1b[2K`,
		"a\u009bb":      `a\u009bb`,
		"x\u202ey":      `x\u202ey`,
		"\U000e0041":    `\U000e0041`,
		"\xff":          `\xff`,
		"plain ascii":   "plain ascii",
		"unicode café ": "unicode café ",
	} {
		if got := Line(in); got != want {
			t.Errorf("Line(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{
		"alice":                        "alice",
		"ali\u200bce":                  `ali\u200bce`,
		"ali\u200dce":                  `ali\u200dce`, // no joiner in a name
		"bob\u00a0smith":               `bob\u00a0smith`,
		"\u3164":                       `\u3164`, // Hangul filler: a blank name
		"line\nbreak":                  `line\x0abreak`,
		"José":                         "José",
		strings.Repeat("a", MaxName):   strings.Repeat("a", MaxName),
		strings.Repeat("a", MaxName+1): strings.Repeat("a", MaxName-1) + "…",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
	// The cut never splits an escape.
	got := Name(strings.Repeat("a", MaxName-3) + "\u202e")
	if got != strings.Repeat("a", MaxName-3)+"…" {
		t.Errorf("cut inside an escape: %q", got)
	}
	if n := utf8.RuneCountInString(Name(strings.Repeat("\u202e", 100))); n > MaxName {
		t.Errorf("Name is %d runes, over %d", n, MaxName)
	}
}

func TestSaveName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":              "photo.jpg",
		"../../.bashrc":          "bashrc",
		`..\..\x.exe`:            "x.exe",
		"..":                     "attachment",
		".":                      "attachment",
		"":                       "attachment",
		"/":                      "attachment",
		"-rf":                    "rf",
		"--help.txt":             "help.txt",
		" .hidden":               "hidden",
		"invoice\u202egnp.exe":   "invoice_gnp.exe",
		"a\x1b[2Kb":              "a_[2Kb",
		"c:evil":                 "c_evil",
		"trailing. . ":           "trailing",
		"bad\xffutf8":            "bad_utf8",
		"ali\u200bce.txt":        "ali_ce.txt",
		strings.Repeat("é", 200): strings.Repeat("é", MaxSaveName/2),
	} {
		got := SaveName(in)
		if got != want {
			t.Errorf("SaveName(%q) = %q, want %q", in, got, want)
		}
	}
}

// forbiddenIn returns a rune of s that the context must never let out.
func forbiddenIn(s string, body bool) (rune, bool) {
	marks := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			return r, true
		}
		if body && (r == '\n' || r == 0x200c || r == 0x200d || r == 0x200e || r == 0x200f || r == 0x061c) {
			continue
		}
		if Forbidden(r) {
			return r, true
		}
		if isMark(r) {
			marks++
			limit := lineMarks
			if body {
				limit = bodyMarks
			}
			if marks > limit {
				return r, true
			}
		} else {
			marks = 0
		}
	}
	return 0, false
}

// A hostile name never leads out of the download folder.
func TestSaveNameStaysInFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "attachments")
	for _, n := range []string{"../../.bashrc", `..\..\x`, "..", ".", "/etc/passwd", "a/../../b", "\u202e../x",
		"..\u200b/..\u200b/x", "-", "....", "%2e%2e%2fx", "x\x00y", strings.Repeat("../", 100) + "z"} {
		p := filepath.Join(dir, SaveName(n))
		if filepath.Dir(p) != dir {
			t.Errorf("SaveName(%q) = %q leads to %s, outside %s", n, SaveName(n), p, dir)
		}
	}
}
