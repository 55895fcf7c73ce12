#!/usr/bin/env bash
# Attachment throughput on loopback: a real sottod and two real sotto
# processes move a SIZE_MB file (default 200) from alice to bob; compared
# with a plain file copy of the same size. Prints wall times, MB/s and the
# relay's CPU time per MB (utime+stime of the sottod process, /proc).
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${SIZE_MB:-200}
work=$(mktemp -d)
trap 'kill $relay_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/sottod" ./cmd/sottod
go build -o "$work/sotto" ./cmd/sotto
mkdir -p "$work/data"
"$work/sottod" serve -data "$work/data" -listen 127.0.0.1:0 -log-level warn -turn-listen "" >"$work/relay.out" 2>"$work/relay.err" &
relay_pid=$!
for _ in $(seq 100); do grep -q 'listening on' "$work/relay.out" && break; sleep 0.1; done
url=$(sed -n 's/^sottod: relay listening on //p' "$work/relay.out" | head -1)
boot=$("$work/sottod" admin bootstrap -data "$work/data" -relay "$url" --json | sed -n 's/.*"code": *"\([^"]*\)".*/\1/p')
echo pw >"$work/pass"
s() { "$work/sotto" --passphrase-file "$work/pass" "$@"; }
# alice creates the organization (first admin) and invites bob.
s --home "$work/alice" admin init --bootstrap "$boot" --user alice --org Bench --argon2-memory 8 --argon2-time 1 >/dev/null
s --home "$work/alice" admin invite bob --out "$work/bob.invitation" >/dev/null
s --home "$work/bob" enroll --invitation "@$work/bob.invitation" --argon2-memory 8 --argon2-time 1 >/dev/null
head -c $((size_mb << 20)) /dev/urandom >"$work/file.bin"
sync

cpu() { awk '{print $14 + $15}' "/proc/$relay_pid/stat"; }
tick=$(getconf CLK_TCK)
now() { date +%s.%N; }

t0=$(now); cp "$work/file.bin" "$work/copy.bin"; sync; t1=$(now)
c0=$(cpu); u0=$(now)
s --home "$work/alice" send bob --file "$work/file.bin" >/dev/null
u1=$(now); c1=$(cpu)
s --home "$work/bob" listen --drain >/dev/null
d0=$(now)
s --home "$work/bob" download --latest alice --out "$work/got.bin" >/dev/null
d1=$(now); c2=$(cpu)
cmp "$work/file.bin" "$work/got.bin"

awk -v mb="$size_mb" -v cp="$(echo "$t1 - $t0" | bc)" -v up="$(echo "$u1 - $u0" | bc)" -v dn="$(echo "$d1 - $d0" | bc)" \
  -v cu="$(echo "($c1 - $c0) / $tick" | bc -l)" -v cd="$(echo "($c2 - $c1) / $tick" | bc -l)" 'BEGIN {
  printf "file %d MiB\n", mb
  printf "plain copy (cp+sync)   %6.2f s  %7.1f MiB/s\n", cp, mb/cp
  printf "upload   (sotto send)  %6.2f s  %7.1f MiB/s  relay CPU %.2f s = %.1f ms/MiB\n", up, mb/up, cu, 1000*cu/mb
  printf "download (sotto dl)    %6.2f s  %7.1f MiB/s  relay CPU %.2f s = %.1f ms/MiB\n", dn, mb/dn, cd, 1000*cd/mb
}'
