#!/usr/bin/env bash
# Packages a release build: the sottod and sotto .debs (nfpm, pinned in
# tools/go.mod) and the sottod OCI image (tools/cmd/sotto-image: no container
# engine), for each linux platform built by scripts/release-build.sh.
#
#   scripts/package.sh DIST [GOOS/GOARCH ...]     (DIST: the release-build output)
#
# Environment: VERSION (as for release-build.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${1:?usage: package.sh DIST [linux/ARCH ...]}
shift
platforms=("$@")
[ ${#platforms[@]} -gt 0 ] || platforms=(linux/amd64 linux/arm64)
VERSION=${VERSION:-$(git describe --tags --match 'v[0-9]*' 2>/dev/null || echo v0.0.0-dev)}
GO=${GO:-go}
dist=$(cd "$dist" && pwd)
tools="$dist/.tools"
mkdir -p "$tools"
"$GO" -C tools build -trimpath -o "$tools/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm
"$GO" -C tools build -trimpath -o "$tools/sotto-image" ./cmd/sotto-image
for p in "${platforms[@]}"; do
  arch=${p#linux/}
  bin="$dist/linux_$arch"
  for pkg in sottod sotto; do
    # nfpm expands no variables in file paths: fill them in here.
    sed -e "s|\${BIN}|$bin|g" -e "s|\${DEB_ARCH}|$arch|g" -e "s|\${DEB_VERSION}|${VERSION#v}|g" \
      "packaging/nfpm-$pkg.yaml" > "$tools/nfpm-$pkg.yaml"
    "$tools/nfpm" package --config "$tools/nfpm-$pkg.yaml" --packager deb --target "$dist/" >/dev/null
  done
  "$tools/sotto-image" -sottod "$bin/sottod" -arch "$arch" -version "$VERSION" -out "$dist/oci_linux_$arch"
  # Read the image back: it must hold this very sottod.
  "$tools/sotto-image" -check "$dist/oci_linux_$arch" | grep -q "^sottod sha256 $(sha256sum < "$bin/sottod" | cut -c1-64)$" ||
    { echo "package: the image does not hold $bin/sottod" >&2; exit 1; }
done
rm -rf "$tools"
# SHA256SUMS covers what a release hands out: binaries, packages, image tarballs.
(cd "$dist" && find . -type f ! -name SHA256SUMS ! -path './oci_*/layout/*' | LC_ALL=C sort | sed 's|^\./||' |
  xargs sha256sum > SHA256SUMS)
ls "$dist"/*.deb
