//go:build !opus

package call

// newOpus reports that this build has no Opus (build with -tags opus, and
// libopus, for it).
func newOpus() Codec { return nil }
