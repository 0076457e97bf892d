#!/usr/bin/env bash
# Build SeaweedFS's `weed` (the real S3-compatible server the S3 backup
# store is tested against) once per version, and print the binary's path.
#
# `go install` refuses the module (its go.mod has replace directives), so
# it is built as its own main module: downloaded through the module proxy,
# copied to a scratch directory, built there. The build takes several
# minutes; the binary is cached.
#
# Usage: scripts/seaweedfs.sh [--cached]
#   --cached  print the cached binary's path, or exit 1 if there is none
# Environment: COFFER_CACHE overrides the cache root.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=v0.0.0-20261109003541-7506e5f91cd6
cache_root=${COFFER_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/coffer}
bin="$cache_root/weed-$VERSION"

if [[ -x "$bin" ]]; then
	echo "$bin"
	exit 0
fi
if [[ "${1:-}" == "--cached" ]]; then
	exit 1
fi
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3}
mkdir -p "$cache_root"
scratch=$(mktemp -d)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
# Outside any module, so this repository's go.mod and go.sum stay untouched.
dir=$(cd "$scratch" && GOFLAGS=-mod=mod go mod download -json "github.com/seaweedfs/seaweedfs@$VERSION" |
	sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[[ -n "$dir" && -d "$dir" ]] || { echo "seaweedfs.sh: go mod download gave no directory" >&2; exit 1; }
cp -r "$dir" "$scratch/src"
chmod -R u+w "$scratch/src"
echo "seaweedfs.sh: building weed $VERSION (several minutes)" >&2
(cd "$scratch/src" && go build -trimpath -o "$scratch/weed" ./weed)
mv "$scratch/weed" "$bin.tmp" && mv "$bin.tmp" "$bin"
echo "$bin"
