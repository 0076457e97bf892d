#!/usr/bin/env bash
# Runs `go test` with the given arguments, its output unchanged, then lists
# the packages by time, slowest first (GOTEST_TOP of them, default 15), so
# a slow package is visible in CI's log. Exits with go test's status.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"${GO:-go}" test "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo
echo "package times, slowest first (status $rc):"
awk '($1 == "ok" || $1 == "FAIL") && $3 ~ /^[0-9.]+s$/ {
	t = $3; sub(/s$/, "", t); printf "%9.1fs  %-4s %s\n", t, $1, $2
}' "$log" | sort -rn | head -n "${GOTEST_TOP:-15}"
exit "$rc"
