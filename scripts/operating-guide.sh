#!/usr/bin/env bash
# Follows docs/operating.md, "From a fresh Debian host", step by step on this
# machine: builds a release and its .debs, installs them with dpkg -i, checks
# the unit with systemd-analyze verify, runs the installed sottod the way its
# unit does (its user, StateDirectory, UMask, EnvironmentFile, ExecStart; no
# systemd as PID 1 here), serves TLS from an internal CA, bootstraps an
# organization, enrolls a client, backs up and restores, upgrades, tries
# PostgreSQL and NATS, and reads the monitoring endpoints. Then it removes
# what it installed.
#
# It installs packages and a system user: it runs only as root, and only
# when asked (CI=true, as in CI, or SOTTO_GUIDE_TEST=1). Elsewhere it says
# so and exits 0; under CI, not being root fails.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
if [ "$(id -u)" != 0 ] || { [ "${CI:-}" != true ] && [ "${SOTTO_GUIDE_TEST:-}" != 1 ]; }; then
  if [ "${CI:-}" = true ]; then
    echo "operating-guide: must run as root under CI" >&2
    exit 1
  fi
  echo "operating-guide: skipped (run as root with SOTTO_GUIDE_TEST=1: it installs the .debs on this machine)"
  exit 0
fi
trap 'echo "operating-guide: FAIL at line $LINENO: $BASH_COMMAND" >&2' ERR
step() { printf '\n== operating-guide: %s\n' "$*"; }
fail() { echo "operating-guide: FAIL: $*" >&2; exit 1; }

work=$(mktemp -d /tmp/sotto-guide.XXXXXX)
chmod 755 "$work"
relay_pid=""
cleanup() {
  [ -z "$relay_pid" ] || kill "$relay_pid" 2>/dev/null || true
  [ -z "${pg_pid:-}" ] || kill "$pg_pid" 2>/dev/null || true
  dpkg --purge sottod sotto >/dev/null 2>&1 || true
  rm -rf /var/lib/sotto /etc/sotto "$work"
  [ -z "${pgschema:-}" ] || psql -q -h 127.0.0.1 -U postgres -c "DROP SCHEMA IF EXISTS $pgschema CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
PORT=$(free_port) MPORT=$(free_port) TPORT=$(free_port)

step "0. build a release and its packages (make release does this for every platform)"
[ -z "$(ls /var/lib/sotto 2>/dev/null)" ] || fail "/var/lib/sotto is not empty on this machine: refusing to touch it"
export VERSION=v0.0.0-guide
scripts/release-build.sh "$work/dist" linux/amd64 >/dev/null
scripts/package.sh "$work/dist" linux/amd64 >/dev/null
ls "$work/dist"/*.deb

step "1. install the packages"
dpkg -i "$work/dist"/sottod_*_amd64.deb "$work/dist"/sotto_*_amd64.deb >/dev/null
getent passwd sotto >/dev/null || fail "the package made no sotto user"
sottod --version
sotto --version

step "2. the units"
command -v systemd-analyze >/dev/null || fail "systemd-analyze missing (apt-get install systemd)"
unit=/usr/lib/systemd/system/sottod.service
systemd-analyze verify "$unit"
# The agent's user unit, checked by the same rules (a user manager needs a
# login session, which a CI machine has not).
systemd-analyze verify /usr/lib/systemd/user/sotto-agent.service
echo "units verified"

step "3. TLS from an internal CA"
ca="$work/ca"
mkdir -p "$ca"
install -d -o root -g sotto -m 0750 /etc/sotto
openssl req -x509 -newkey ed25519 -nodes -days 30 -subj "/CN=Guide Test CA" \
  -keyout "$ca/ca.key" -out "$ca/ca.pem" 2>/dev/null
openssl req -newkey ed25519 -nodes -subj "/CN=relay.test" -keyout /etc/sotto/key.pem -out "$ca/relay.csr" 2>/dev/null
openssl x509 -req -in "$ca/relay.csr" -CA "$ca/ca.pem" -CAkey "$ca/ca.key" -CAcreateserial -days 30 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:relay.test\nextendedKeyUsage=serverAuth\n') -out /etc/sotto/cert.pem 2>/dev/null
chown root:sotto /etc/sotto/cert.pem /etc/sotto/key.pem
chmod 0640 /etc/sotto/cert.pem /etc/sotto/key.pem

step "4. the relay's settings"
cat > /etc/default/sottod <<CONF
SOTTOD_OPTS="-listen 127.0.0.1:$PORT -tls-cert /etc/sotto/cert.pem -tls-key /etc/sotto/key.pem -metrics-listen 127.0.0.1:$MPORT -turn-listen 127.0.0.1:$TPORT"
CONF

# start_relay runs the installed sottod as its unit does: User/Group,
# StateDirectory (made as systemd makes it), UMask, EnvironmentFile and
# ExecStart, read from the installed unit file.
unit_value() { sed -n "s/^$1=//p" "$unit" | head -n1; }
start_relay() {
  local user group state mode umask envfile exec
  user=$(unit_value User) group=$(unit_value Group) state=$(unit_value StateDirectory)
  mode=$(unit_value StateDirectoryMode) umask=$(unit_value UMask)
  envfile=$(unit_value EnvironmentFile) exec=$(unit_value ExecStart)
  install -d -o "$user" -g "$group" -m "$mode" "/var/lib/$state"
  install -d -o root -g "$group" -m "$(unit_value ConfigurationDirectoryMode)" "/etc/$(unit_value ConfigurationDirectory)"
  setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
    bash -c "umask $umask; set -a; . ${envfile#-}; set +a; exec $exec" >"$work/relay.log" 2>&1 &
  relay_pid=$!
  for _ in $(seq 1 100); do
    curl -sf --cacert "$ca/ca.pem" "https://127.0.0.1:$PORT/healthz" >/dev/null && return 0
    kill -0 "$relay_pid" 2>/dev/null || { cat "$work/relay.log"; fail "sottod exited"; }
    sleep 0.2
  done
  cat "$work/relay.log"; fail "sottod did not answer /healthz"
}
stop_relay() { kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true; relay_pid=""; }

step "5. start the relay (as the unit would)"
start_relay
ps -o user=,cmd= -p "$relay_pid"
[ "$(ps -o user= -p "$relay_pid")" = sotto ] || fail "sottod does not run as sotto"
[ "$(stat -c '%U %a' /var/lib/sotto)" = "sotto 700" ] || fail "StateDirectory: $(stat -c '%U %a' /var/lib/sotto)"
curl -sf --cacert "$ca/ca.pem" "https://127.0.0.1:$PORT/healthz"

step "6. the organization: bootstrap code, first admin, invitations, a person"
runuser -u sotto -- sottod admin bootstrap -data /var/lib/sotto -relay "wss://127.0.0.1:$PORT" -tls-cert /etc/sotto/cert.pem > "$work/boot.txt"
h="$work/homes"
mkdir -p "$h"
printf 'correct horse battery staple guide\n' > "$h/pass"
printf 'another export passphrase for the org key\n' > "$h/export-pass"
kdf=(--argon2-memory 8 --argon2-time 1)
sotto --home "$h/alice" --passphrase-file "$h/pass" admin init --bootstrap @"$work/boot.txt" --user alice --org "Guide Org" --relay-ca "$ca/ca.pem" "${kdf[@]}"
sotto --home "$h/alice" --passphrase-file "$h/pass" admin export --out "$h/org-key.sealed" --export-passphrase-file "$h/export-pass"
sotto --home "$h/alice" --passphrase-file "$h/pass" admin invite bob --out "$h/bob.invite" >/dev/null
sotto --home "$h/bob" --passphrase-file "$h/pass" enroll --invitation @"$h/bob.invite" "${kdf[@]}"
sotto --home "$h/alice" --passphrase-file "$h/pass" send bob "hello bob"
sotto --home "$h/bob" --passphrase-file "$h/pass" listen --drain --count 1 --timeout 60s | grep -q 'hello bob' || fail "bob did not get the message"
echo "bob enrolled and received a message over TLS"

step "7. monitoring"
curl -sf "http://127.0.0.1:$MPORT/readyz"
curl -sf "http://127.0.0.1:$MPORT/metrics" > "$work/metrics"
grep -m3 '^sotto_' "$work/metrics" || fail "no metrics"
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$ca/ca.pem" "https://127.0.0.1:$PORT/metrics")" = 404 ] || fail "/metrics on the public port"

step "8. backup (online) and restore"
backup="$work/backup"
install -d -m 0700 "$backup"
sqlite3 /var/lib/sotto/relay.db ".backup '$backup/relay.db'"
cp -a /var/lib/sotto/*.key /var/lib/sotto/turn.secret "$backup/"
[ ! -d /var/lib/sotto/blobs ] || cp -a /var/lib/sotto/blobs "$backup/"
sotto --home "$h/alice" --passphrase-file "$h/pass" send bob "after the backup"
# Restore: stop, replace the state folder with the backup, start.
stop_relay
rm -rf /var/lib/sotto
install -d -o sotto -g sotto -m 0700 /var/lib/sotto
cp -a "$backup"/. /var/lib/sotto/
chown -R sotto:sotto /var/lib/sotto
start_relay
sotto --home "$h/alice" --passphrase-file "$h/pass" send bob "after the restore"
sotto --home "$h/bob" --passphrase-file "$h/pass" listen --drain --count 1 --timeout 60s | grep -q 'after the restore' || fail "no message after the restore"
echo "restored: the relay knows alice and bob, and delivers"

step "9. upgrade (a newer .deb over the running one, then a restart)"
dpkg -i "$work/dist"/sottod_*_amd64.deb >/dev/null
grep -q "127.0.0.1:$PORT" /etc/default/sottod || fail "the upgrade replaced /etc/default/sottod"
stop_relay
start_relay
sotto --home "$h/alice" --passphrase-file "$h/pass" send bob "after the upgrade"
sotto --home "$h/bob" --passphrase-file "$h/pass" listen --drain --count 1 --timeout 60s | grep -q 'after the upgrade' || fail "no message after the upgrade"

step "10. PostgreSQL and NATS (a second relay node's flags)"
if psql -q -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1 && (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  pgschema="sotto_guide_$$"
  psql -q -h 127.0.0.1 -U postgres -c "CREATE SCHEMA $pgschema" >/dev/null
  PG_PORT=$(free_port)
  runuser -u sotto -- sottod serve -data /var/lib/sotto -listen "127.0.0.1:$PG_PORT" -turn-listen "" \
    -store postgres -postgres-url "postgres://postgres@127.0.0.1:5432/postgres" -postgres-schema "$pgschema" \
    -bus nats -nats-url nats://127.0.0.1:4222 >"$work/pg.log" 2>&1 &
  pg_pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PG_PORT/healthz" >/dev/null && break; sleep 0.2; done
  curl -sf "http://127.0.0.1:$PG_PORT/healthz" >/dev/null || { cat "$work/pg.log"; fail "the PostgreSQL node did not start"; }
  kill "$pg_pid"; wait "$pg_pid" 2>/dev/null || true; pg_pid=""
  echo "a node on PostgreSQL and NATS served"
elif [ "${CI:-}" = true ]; then
  fail "PostgreSQL (127.0.0.1:5432) or NATS (127.0.0.1:4222) not reachable under CI"
else
  echo "skipped: PostgreSQL or NATS not reachable"
fi

step "done"
stop_relay
echo "operating-guide: every step passed"
