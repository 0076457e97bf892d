package main

import (
	"errors"
	"fmt"
	"strings"
)

// errBadVersion reports a version string that is not SemVer 2.0.0.
var errBadVersion = errors.New("not a semantic version")

// semver is a parsed SemVer 2.0.0 version. Build metadata ("+incompatible")
// is dropped: it takes no part in precedence.
type semver struct {
	core [3]string // major, minor, patch: decimal digits, no leading zeros
	pre  []string  // dot-separated pre-release identifiers, nil if none
}

// parseSemver parses "1.2.3", "1.2.3-rc.1", "1.2.3+meta" and the like, with
// an optional leading "v" as Go module versions carry.
func parseSemver(s string) (semver, error) {
	var v semver
	rest := strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		if !validIdents(rest[i+1:], false) {
			return semver{}, fmt.Errorf("%q: build metadata: %w", s, errBadVersion)
		}
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		if !validIdents(rest[i+1:], true) {
			return semver{}, fmt.Errorf("%q: pre-release: %w", s, errBadVersion)
		}
		v.pre = strings.Split(rest[i+1:], ".")
		rest = rest[:i]
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return semver{}, fmt.Errorf("%q: want MAJOR.MINOR.PATCH: %w", s, errBadVersion)
	}
	for i, p := range parts {
		if !isNumeric(p) || (len(p) > 1 && p[0] == '0') {
			return semver{}, fmt.Errorf("%q: component %q: %w", s, p, errBadVersion)
		}
		v.core[i] = p
	}
	return v, nil
}

// validIdents reports whether s is a non-empty dot-separated list of
// non-empty [0-9A-Za-z-] identifiers; for pre-release identifiers, numeric
// ones must not have leading zeros.
func validIdents(s string, pre bool) bool {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return false
		}
		for _, c := range []byte(id) {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
		}
		if pre && isNumeric(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
	}
	return true
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// compareNum compares two decimal strings without leading zeros, of any length.
func compareNum(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// compare returns -1, 0 or +1 as v has lower, equal or higher precedence
// than w, by SemVer 2.0.0 section 11.
func (v semver) compare(w semver) int {
	for i := range v.core {
		if c := compareNum(v.core[i], w.core[i]); c != 0 {
			return c
		}
	}
	switch {
	case v.pre == nil && w.pre == nil:
		return 0
	case v.pre == nil:
		return 1 // a release outranks its pre-releases
	case w.pre == nil:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(w.pre); i++ {
		a, b := v.pre[i], w.pre[i]
		an, bn := isNumeric(a), isNumeric(b)
		var c int
		switch {
		case an && bn:
			c = compareNum(a, b)
		case an:
			c = -1 // numeric identifiers sort before alphanumeric ones
		case bn:
			c = 1
		default:
			c = strings.Compare(a, b)
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case len(v.pre) < len(w.pre):
		return -1
	case len(v.pre) > len(w.pre):
		return 1
	}
	return 0
}

// latestFixed returns the version at and after which no SEMVER range of an
// affected module is vulnerable, or "" when there is none: no fix at all, or
// a later re-introduction. It follows the rule govulncheck's own index
// builder uses. A version that does not parse yields "" too, which only
// makes govulncheck fetch the full entry and decide from its ranges.
func latestFixed(ranges []osvRange) string {
	var latest string
	var latestV semver
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed == "" {
				continue
			}
			v, err := parseSemver(e.Fixed)
			if err != nil {
				return ""
			}
			if latest == "" || latestV.compare(v) < 0 {
				latest, latestV = e.Fixed, v
			}
		}
		for _, e := range r.Events {
			if e.Introduced == "" || e.Introduced == "0" {
				continue
			}
			v, err := parseSemver(e.Introduced)
			if err != nil {
				return ""
			}
			if latest == "" || latestV.compare(v) < 0 {
				// Re-introduced after the latest fix seen so far.
				latest, latestV = "", semver{}
				break
			}
		}
	}
	return latest
}
