//go:build race

package groups

// thousandMembers is the size of TestGroupThousandMembers's group: under
// the race detector (make test), 420 devices, which still puts the
// commit, Welcome and GroupInfo over a frame each; 1,000 otherwise.
const thousandMembers = 420
