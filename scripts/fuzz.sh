#!/usr/bin/env bash
# Run every fuzz target of the repository for a bounded time each.
#
# Usage: scripts/fuzz.sh [FUZZTIME]   (default 10s; e.g. 5m for a long run)
# A target's seeds and committed corpus (testdata/fuzz/) already run in every
# `go test`; this explores further. A failing input is written under the
# package's testdata/fuzz/ by the go command: commit it with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
status=0
while IFS=: read -r file name; do
	pkg=./$(dirname "$file")
	echo "== $pkg $name ($fuzztime)"
	# -parallel 1: some targets start a cluster per worker process.
	if ! go test -count=1 -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -parallel 1 "$pkg"; then
		status=1
	fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . |
	sed 's|^\./||; s|func ||' | sort)
exit $status
