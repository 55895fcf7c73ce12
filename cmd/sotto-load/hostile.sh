#!/bin/sh
# hostile.sh RELAY_BINARY NOFILE [sotto-load hostile flags...]
#
# Starts RELAY_BINARY (a sottod) on a fresh data directory on loopback with
# at most NOFILE open files, runs `sotto-load hostile` against it and stops
# it. RELAY_BINARY may be an older sottod without -metrics-listen (set
# OLD=1): its /metrics is then read from the public listener.
set -eu
relay=$1
nofile=$2
shift 2
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${PORT:-18383}
mport=$((port + 1))
tmp=$(mktemp -d)
bin=${BIN:-$tmp}
relay_pid=
cleanup() {
	if [ -n "$relay_pid" ]; then
		kill "$relay_pid" 2>/dev/null || true
		wait "$relay_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
[ -x "$bin/sotto-load" ] || (cd "$root" && go build -o "$bin/sotto-load" ./cmd/sotto-load)
if [ "${OLD:-}" = 1 ]; then
	flags=""
	metrics="http://127.0.0.1:$port"
else
	flags="-metrics-listen 127.0.0.1:$mport"
	metrics="http://127.0.0.1:$mport"
fi
# shellcheck disable=SC2086 # flags and SOTTOD_FLAGS are lists of flags
(ulimit -n "$nofile" && exec "$relay" serve -data "$tmp/data" -listen "127.0.0.1:$port" $flags -turn-listen "" \
	-log-level error ${SOTTOD_FLAGS:-} >"$tmp/out.log" 2>"$tmp/sottod.log") &
relay_pid=$!
i=0
until curl -sf "$metrics/readyz" >/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$relay_pid" 2>/dev/null; then
		echo "sottod did not start:" >&2
		cat "$tmp/sottod.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git -C "$root" rev-parse --short HEAD) relay=$relay nofile=$nofile uptime:$(uptime)"
"$bin/sotto-load" hostile -relay "ws://127.0.0.1:$port" -metrics "$metrics" "$@"
echo "# after: $(uptime)"
