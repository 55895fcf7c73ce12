package tui

import "time"

// Stamp is how a message's time is shown: the time alone on the day it is
// shown, with the date on any other day (a history spans days; "09:12"
// alone would say today). seconds adds the seconds, as the line mode does.
func Stamp(t, now time.Time, seconds bool) string {
	t, now = t.Local(), now.Local()
	clock := "15:04"
	if seconds {
		clock = "15:04:05"
	}
	ty, tm, td := t.Date()
	ny, nm, nd := now.Date()
	switch {
	case ty == ny && tm == nm && td == nd:
		return t.Format(clock)
	case ty == ny:
		return t.Format("Jan 2 " + clock)
	}
	return t.Format("2006-01-02 " + clock)
}
