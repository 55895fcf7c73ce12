#!/usr/bin/env bash
# Builds release binaries of sotto and sottod, reproducibly.
#
#   scripts/release-build.sh OUTDIR [GOOS/GOARCH ...]
#
# Environment: VERSION (default: git describe, else v0.0.0-dev), COMMIT
# (default: git rev-parse HEAD), RELEASE_KEY (hex Ed25519 public key the
# binaries pin for `sotto update`; empty: update is refused), GO (default go).
#
# What makes two builds byte-identical: the pinned toolchain (checked below),
# -trimpath (no folder names), -buildvcs=false with the commit stamped
# explicitly (so a dirty tree or a missing .git changes nothing), an empty
# build id, CGO_ENABLED=0 (no host C compiler or libraries enter the binary)
# and the module graph fixed by go.sum. Opus (cgo, -tags opus) is not part
# of a release build: release calls use G.711.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: release-build.sh OUTDIR [GOOS/GOARCH ...]}
shift
platforms=("$@")
[ ${#platforms[@]} -gt 0 ] || platforms=(linux/amd64 linux/arm64 darwin/arm64 windows/amd64)
GO=${GO:-go}

# The pinned toolchain: a release is built with exactly this Go.
want_go=$(cat scripts/release-go-version)
have_go=$(GOTOOLCHAIN=local "$GO" env GOVERSION)
if [ "$have_go" != "$want_go" ]; then
  echo "release-build: toolchain $have_go, but releases are built with $want_go (scripts/release-go-version)" >&2
  exit 1
fi

VERSION=${VERSION:-$(git describe --tags --match 'v[0-9]*' 2>/dev/null || echo v0.0.0-dev)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
RELEASE_KEY=${RELEASE_KEY:-}
ldflags="-buildid= -X sotto/internal/version.version=$VERSION -X sotto/internal/version.commit=$COMMIT"
[ -z "$RELEASE_KEY" ] || ldflags="$ldflags -X sotto/internal/version.releaseKey=$RELEASE_KEY"

mkdir -p "$out"
for p in "${platforms[@]}"; do
  goos=${p%/*} goarch=${p#*/}
  ext=""
  [ "$goos" = windows ] && ext=.exe
  for cmd in sotto sottod; do
    dst="$out/${goos}_${goarch}/$cmd$ext"
    mkdir -p "$(dirname "$dst")"
    GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOFLAGS=-mod=readonly \
      "$GO" build -trimpath -buildvcs=false -ldflags "$ldflags" -o "$dst" "./cmd/$cmd"
  done
done
(cd "$out" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | sed 's|^\./||' | xargs sha256sum > SHA256SUMS)
echo "release-build: $VERSION ($COMMIT) in $out"
