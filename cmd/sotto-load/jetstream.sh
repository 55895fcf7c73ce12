#!/usr/bin/env bash
# Runs `sotto-load jetstream` against a fresh nats-server with JetStream
# fsyncing every write (sync_interval: always, nats-server >= 2.10), on its
# own port and store directory, and stops it afterwards.
#
#   cmd/sotto-load/jetstream.sh NATS_SERVER [sotto-load jetstream flags]
#   cmd/sotto-load/jetstream.sh /tmp/bin/nats-server -publish sync
#   cmd/sotto-load/jetstream.sh /tmp/bin/nats-server -publish async -inflight 4
#   cmd/sotto-load/jetstream.sh /tmp/bin/nats-server -publish batch -ack-batch 256
#   cmd/sotto-load/jetstream.sh /tmp/bin/nats-server -publish async -rate 5000
#
# Environment: PORT (4333), BIN (where to build sotto-load).
set -eu

server=${1:?usage: $0 NATS_SERVER [sotto-load jetstream flags]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${PORT:-4333}
tmp=$(mktemp -d)
bin=${BIN:-$tmp}
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

(cd "$root" && go build -o "$bin/sotto-load" ./cmd/sotto-load)
cat >"$tmp/nats.conf" <<CONF
listen: 127.0.0.1:$port
jetstream {
  store_dir: "$tmp/js"
  sync_interval: always
}
CONF
"$server" -c "$tmp/nats.conf" >"$tmp/nats.log" 2>&1 &
pid=$!
i=0
until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "nats-server did not start:" >&2
		cat "$tmp/nats.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $("$server" --version) uptime:$(uptime)"
"$bin/sotto-load" jetstream -nats "nats://127.0.0.1:$port" "$@"
echo "# after: $(uptime)"
