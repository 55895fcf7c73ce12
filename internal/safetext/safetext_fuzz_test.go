package safetext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSanitize: whatever the input, no context lets a forbidden rune or a
// byte of invalid UTF-8 out, every context is idempotent, Name and
// FileName stay within their bounds, and SaveName is a plain base name.
func FuzzSanitize(f *testing.F) {
	for _, tc := range hostile {
		f.Add(tc.in)
	}
	f.Add("plain text")
	f.Add(strings.Repeat("\u202e", MaxName))
	seeds := len(hostile) + 2
	if seeds < 20 {
		f.Fatalf("only %d seeds loaded", seeds)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, fn := range map[string]func(string) string{"Line": Line, "Name": Name, "FileName": FileName, "Body": Body, "SaveName": SaveName} {
			got := fn(s)
			if !utf8.ValidString(got) {
				t.Fatalf("%s(%q) = %q: invalid UTF-8", name, s, got)
			}
			if r, bad := forbiddenIn(got, name == "Body"); bad {
				t.Fatalf("%s(%q) = %q: contains %U", name, s, got, r)
			}
			if again := fn(got); again != got {
				t.Fatalf("%s is not idempotent on %q: %q then %q", name, s, got, again)
			}
		}
		if n := utf8.RuneCountInString(Name(s)); n > MaxName {
			t.Fatalf("Name(%q) is %d runes", s, n)
		}
		if n := utf8.RuneCountInString(FileName(s)); n > MaxFileName {
			t.Fatalf("FileName(%q) is %d runes", s, n)
		}
		sn := SaveName(s)
		if sn == "" || sn == "." || sn == ".." || strings.ContainsAny(sn, `/\:`) || len(sn) > MaxSaveName ||
			strings.HasPrefix(sn, ".") || strings.HasPrefix(sn, "-") {
			t.Fatalf("SaveName(%q) = %q: not a plain base name", s, sn)
		}
		if Clean(s) != (Line(s) == s) {
			t.Fatal("Clean disagrees with Line")
		}
	})
}
