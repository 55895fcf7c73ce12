#!/usr/bin/env bash
# Checks that a release build is reproducible: builds sotto and sottod for
# one platform twice, independently, and fails unless the binaries are
# byte-identical.
#
#   scripts/repro-check.sh [GOOS/GOARCH]     (default linux/amd64)
#
# The two builds differ in everything a careless build would record: the
# source folder (different paths and depths), the user (the second runs as
# `nobody` when this runs as root, as CI does), HOME, the build cache (the
# second starts from an empty GOCACHE and its own module cache, filled from
# a file proxy), the umask, the time zone and the time they run. Only the
# source, go.sum, the toolchain and the stamped version and commit are shared.
# `make release` builds the whole matrix; this keeps CI to one platform.
set -euo pipefail
cd "$(dirname "$0")/.."
platform=${1:-linux/amd64}
repo=$(pwd)
GO=$(command -v "${GO:-go}")
export VERSION=${VERSION:-$(git describe --tags --match 'v[0-9]*' 2>/dev/null || echo v0.0.0-dev)}
export COMMIT=${COMMIT:-$(git rev-parse HEAD)}
# A throwaway key, so that the stamp of a pinned key is covered too.
export RELEASE_KEY=${RELEASE_KEY:-3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c}

tmp=$(mktemp -d /tmp/sotto-repro.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"

copy_source() { # DEST
  mkdir -p "$1"
  git -C "$repo" ls-files -z --cached --others --exclude-standard |
    (cd "$repo" && xargs -0 cp --parents -t "$1" 2>/dev/null || true)
  # ls-files lists deleted-but-unstaged files too; cp skips them above.
}

a="$tmp/one/src"
b="$tmp/2/a/much/deeper/folder/sotto-source"
copy_source "$a"
copy_source "$b"

echo "repro-check: build 1 in $a as $(id -un)"
(cd "$a" && umask 022 && TZ=UTC GO="$GO" scripts/release-build.sh "$tmp/out1" "$platform" >/dev/null)

sleep 1 # a different second, for any timestamp that slipped in
home2="$tmp/2/home"
mkdir -p "$home2/cache" "$home2/mod" "$home2/tmp"
# Build 2 fetches modules from a file proxy of the module cache's downloads
# (hard links, no copy), not from build 1's extracted module cache.
cp -al "$("$GO" env GOMODCACHE)/cache/download" "$home2/proxy" 2>/dev/null ||
  cp -r "$("$GO" env GOMODCACHE)/cache/download" "$home2/proxy"
env2=(env -i PATH="$(dirname "$GO"):/usr/bin:/bin" HOME="$home2" GOCACHE="$home2/cache"
  GOMODCACHE="$home2/mod" GOTMPDIR="$home2/tmp" GOPROXY="file://$home2/proxy" GOSUMDB=off
  GOFLAGS= TZ=Asia/Kathmandu GO="$GO" VERSION="$VERSION" COMMIT="$COMMIT" RELEASE_KEY="$RELEASE_KEY")
as=()
user2=$(id -un)
if [ "$(id -u)" = 0 ]; then
  chown -R nobody:nogroup "$tmp/2"
  mkdir -p "$tmp/out2" && chown nobody:nogroup "$tmp/out2"
  as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  user2=nobody
fi
echo "repro-check: build 2 in $b as $user2, empty GOCACHE"
(cd "$b" && umask 077 && "${as[@]}" "${env2[@]}" scripts/release-build.sh "$tmp/out2" "$platform" >/dev/null)

dir=${platform/\//_}
status=0
for f in "$tmp/out1/$dir"/*; do
  name=$(basename "$f")
  if cmp -s "$f" "$tmp/out2/$dir/$name"; then
    echo "repro-check: $platform $name identical: $(sha256sum < "$f" | cut -c1-64)"
  else
    echo "repro-check: $platform $name DIFFERS between the two builds" >&2
    status=1
  fi
done
if [ "$platform" = "$("$GO" env GOOS)/$("$GO" env GOARCH)" ]; then
  for cmd in sotto sottod; do
    got=$("$tmp/out1/$dir/$cmd" --version)
    case "$got" in
      "$cmd $VERSION (commit $COMMIT,"*) echo "repro-check: $got" ;;
      *) echo "repro-check: $cmd --version printed $got, want $VERSION and $COMMIT" >&2; status=1 ;;
    esac
  done
fi
exit $status
