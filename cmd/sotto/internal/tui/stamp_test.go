package tui

import (
	"testing"
	"time"
)

func TestStamp(t *testing.T) {
	now := time.Date(2026, 12, 7, 15, 30, 0, 0, time.Local)
	for _, c := range []struct {
		t       time.Time
		seconds bool
		want    string
	}{
		{time.Date(2026, 12, 7, 9, 5, 7, 0, time.Local), false, "09:05"},
		{time.Date(2026, 12, 7, 9, 5, 7, 0, time.Local), true, "09:05:07"},
		{time.Date(2026, 12, 6, 23, 59, 0, 0, time.Local), false, "Dec 6 23:59"},
		{time.Date(2025, 12, 7, 9, 5, 7, 0, time.Local), true, "2025-12-07 09:05:07"},
	} {
		if got := Stamp(c.t, now, c.seconds); got != c.want {
			t.Errorf("Stamp(%v, seconds=%v) = %q, want %q", c.t, c.seconds, got, c.want)
		}
	}
}
