package sqlitestore

import "time"

// WithSegmentTiming sets the ring's timing (segments.go) in o, so that a
// test sees segments sealed and cleared within milliseconds.
func WithSegmentTiming(o *Options, every, lag time.Duration) {
	o.segEvery, o.segLag = every, lag
}
