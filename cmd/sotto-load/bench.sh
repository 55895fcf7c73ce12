#!/bin/sh
# Runs one of issue 4's two relay targets against a fresh local sottod
# (new data directory, its own port) and stops the relay afterwards.
#
#   cmd/sotto-load/bench.sh throughput [sotto-load flags]   # 1,000 devices back to back
#   cmd/sotto-load/bench.sh latency    [sotto-load flags]   # 1,000 devices, 5,000 msg/s offered
#   cmd/sotto-load/bench.sh backlog    [sotto-load flags]   # a device logging in to 20,000 queued
#   cmd/sotto-load/bench.sh idle       [sotto-load flags]   # 19,500 idle devices held 60 s
#
# Sends are sealed unless the flags say -authenticated.
# Later flags override the defaults (e.g. -duration 60s, -devices 200).
# Environment: PORT (18283), SOTTOD_FLAGS (extra `sottod serve` flags,
# e.g. "-websocket coder"), BIN (where to build the binaries; a
# temporary directory by default). Prints `uptime` before and after:
# on a shared machine, read the CPU per message next to the load.
set -eu

mode=${1:-}
cmd=throughput
case "$mode" in
throughput) defaults="-devices 1000 -rate 0 -duration 20s -warmup 5s" ;;
latency) defaults="-devices 1000 -rate 5000 -duration 20s -warmup 5s" ;;
backlog) cmd=backlog defaults="-devices 2 -messages 20000" ;;
idle) cmd=idle defaults="-devices 19500 -hold 60s" ;; # plus -debug, below
*)
	echo "usage: $0 throughput|latency|backlog|idle [sotto-load flags]" >&2
	exit 2
	;;
esac
shift

root=$(cd "$(dirname "$0")/../.." && pwd)
port=${PORT:-18283}
mport=${METRICS_PORT:-$((port + 1))}
dport=$((port + 2)) # the debug listener (idle: garbage collection before measuring)
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

(cd "$root" && go build -o "$bin/sottod" ./cmd/sottod && go build -o "$bin/sotto-load" ./cmd/sotto-load)
# shellcheck disable=SC2086 # SOTTOD_FLAGS is a list of flags
"$bin/sottod" serve -data "$tmp/data" -listen "127.0.0.1:$port" -metrics-listen "127.0.0.1:$mport" -debug-listen "127.0.0.1:$dport" -log-level warn \
	-enroll-rate 10000 -enroll-burst 100000 -enroll-rate-all 10000 -enroll-burst-all 100000 -device-rate 5000 -sealed-rate 1000000 \
	-conns-per-addr 100000 -unauth-per-addr 100000 -max-unauth 100000 -http-per-addr 100000 ${SOTTOD_FLAGS:-} 2>"$tmp/sottod.log" &
relay_pid=$!
i=0
until curl -sf "http://127.0.0.1:$mport/readyz" >/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$relay_pid" 2>/dev/null; then
		echo "sottod did not start:" >&2
		cat "$tmp/sottod.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(git -C "$root" rev-parse --short HEAD) uptime:$(uptime)"
# shellcheck disable=SC2086 # defaults is a list of flags
# sotto-load creates the relay's organization (bootstrap) and invites its
# devices through the relay's store in -data; none of that is measured.
relay_pid_flag="-relay-pid $relay_pid"
[ "$cmd" = idle ] && defaults="$defaults -debug http://127.0.0.1:$dport"
[ "$cmd" != throughput ] && relay_pid_flag=
# shellcheck disable=SC2086 # lists of flags
"$bin/sotto-load" "$cmd" -relay "ws://127.0.0.1:$port" -metrics "http://127.0.0.1:$mport" -data "$tmp/data" $relay_pid_flag $defaults "$@"
echo "# after: $(uptime)"
