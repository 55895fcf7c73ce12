package release

import "encoding/binary"

// Device posture: a device reports the release it runs as its manifest
// hash and leaf index in the release log, signed with its device key; an
// admin lists the reports with a query signed by the org key. Both the
// relay and the devices build these messages.

const (
	buildReportDomain = "sotto/build report v1\x00"
	buildsQueryDomain = "sotto/org builds v1\x00"
)

// BuildReportMessage is what a device signs to report its build.
func BuildReportMessage(manifestHash []byte, leafIndex uint64, atMs int64, version string) []byte {
	b := append([]byte(buildReportDomain), manifestHash...)
	b = binary.BigEndian.AppendUint64(b, leafIndex)
	b = binary.BigEndian.AppendUint64(b, uint64(atMs))
	return append(b, version...)
}

// BuildsQueryMessage is what an admin signs with the org key to list the
// devices' build reports.
func BuildsQueryMessage(atMs int64) []byte {
	return binary.BigEndian.AppendUint64([]byte(buildsQueryDomain), uint64(atMs))
}
