package release

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a parsed semantic version: vMAJOR.MINOR.PATCH with an optional
// "-pre" suffix, which sorts below the same version without one.
type Version struct {
	Major, Minor, Patch uint64
	Pre                 string
}

// ParseVersion parses "v1.2.3" or "v1.2.3-rc.1".
func ParseVersion(s string) (Version, error) {
	var v Version
	rest, ok := strings.CutPrefix(s, "v")
	if !ok || len(s) > 64 {
		return v, fmt.Errorf("%w: version %q", ErrMalformed, s)
	}
	core, pre, hasPre := strings.Cut(rest, "-")
	if hasPre {
		if pre == "" {
			return v, fmt.Errorf("%w: version %q", ErrMalformed, s)
		}
		for _, r := range pre {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
				return v, fmt.Errorf("%w: version %q", ErrMalformed, s)
			}
		}
		v.Pre = pre
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("%w: version %q", ErrMalformed, s)
	}
	nums := []*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		if p == "" || len(p) > 1 && p[0] == '0' {
			return v, fmt.Errorf("%w: version %q", ErrMalformed, s)
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return v, fmt.Errorf("%w: version %q", ErrMalformed, s)
		}
		*nums[i] = n
	}
	return v, nil
}

// Compare returns -1, 0 or +1 as v is older than, the same as, or newer
// than w. Pre-release suffixes compare as strings.
func (v Version) Compare(w Version) int {
	for _, d := range [][2]uint64{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		if d[0] != d[1] {
			if d[0] < d[1] {
				return -1
			}
			return 1
		}
	}
	switch {
	case v.Pre == w.Pre:
		return 0
	case v.Pre == "":
		return 1
	case w.Pre == "":
		return -1
	}
	return strings.Compare(v.Pre, w.Pre)
}

// CompareVersions compares two version strings; an unparsable one sorts
// below every valid one (so it is never "newer").
func CompareVersions(a, b string) int {
	va, ea := ParseVersion(a)
	vb, eb := ParseVersion(b)
	switch {
	case ea != nil && eb != nil:
		return 0
	case ea != nil:
		return -1
	case eb != nil:
		return 1
	}
	return va.Compare(vb)
}
