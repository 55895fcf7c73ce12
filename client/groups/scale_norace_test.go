//go:build !race

package groups

// thousandMembers: see scale_race_test.go.
const thousandMembers = 1000
