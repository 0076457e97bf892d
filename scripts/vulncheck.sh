#!/usr/bin/env bash
# Run govulncheck on the repository without reaching vuln.go.dev.
#
# The Go vulnerability database comes from the module proxy as the module
# golang.org/x/vulndb (pinned below); tools/vulndb turns its data/osv files into
# the layout `govulncheck -db file://DIR` reads, in a cache directory that is
# built once per vulndb version. Needs nothing but Go.
#
# Usage: scripts/vulncheck.sh [govulncheck arguments]
# With no arguments it scans ./...; arguments replace that entirely and go to
# govulncheck as given, e.g. `scripts/vulncheck.sh -show verbose ./...`.
# Exit status: govulncheck's (0 clean, 3 vulnerabilities found, other: error).
# Environment: VULNCHECK_CACHE overrides the database cache root.
set -euo pipefail
cd "$(dirname "$0")/.."

GOVULNCHECK_VERSION=v1.9.0
VULNDB_VERSION=v0.0.0-20261105234957-e22db6528018
# Bump when tools/vulndb changes what it writes, so old caches are not reused.
FORMAT=1

cache_root=${VULNCHECK_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/coffer-vulndb}
[[ "$cache_root" == /* ]] || cache_root="$PWD/$cache_root" # file:// needs an absolute path
db="$cache_root/$VULNDB_VERSION-f$FORMAT"
bin="$cache_root/govulncheck-$GOVULNCHECK_VERSION"

if [[ ! -f "$db/index/modules.json" ]]; then
	# Download outside any module so this repository's go.mod and go.sum stay untouched.
	scratch=$(mktemp -d)
	trap 'rm -rf "$scratch"' EXIT
	info=$(cd "$scratch" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION") || true
	src=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
	if [[ -z "$src" || ! -d "$src/data/osv" ]]; then
		echo "vulncheck: could not download golang.org/x/vulndb@$VULNDB_VERSION:" >&2
		echo "$info" >&2
		exit 1
	fi
	rm -rf "$scratch"
	trap - EXIT
	go run ./tools/vulndb -src "$src" -out "$db" -version "$VULNDB_VERSION"
fi

# Installed rather than `go run`, which turns govulncheck's exit status 3
# ("vulnerabilities found") into 1. A no-op when the binary is up to date.
GOBIN="$bin" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"

if (($# == 0)); then
	set -- ./...
fi
exec "$bin/govulncheck" -db "file://$db" "$@"
