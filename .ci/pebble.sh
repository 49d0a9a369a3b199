#!/usr/bin/env bash
# A local ACME server for the gateway's integration tests: Pebble v2.10.1 and
# pebble-challtestsrv (its DNS server), built once from the Go module proxy,
# on loopback.
#
#   bash .ci/pebble.sh start   # builds if needed, starts both, writes $STATE/pebble.env
#   bash .ci/pebble.sh env     # writes and prints $STATE/pebble.env
#   bash .ci/pebble.sh stop
#
# Addresses:
#   https://127.0.0.1:14000/dir   ACME directory (TLS by Pebble's minica root)
#   https://127.0.0.1:15000       Pebble's management API (/roots/0, /intermediates/0)
#   127.0.0.1:8053 (udp+tcp)      challtestsrv DNS: every name is 127.0.0.1, no AAAA
#   http://127.0.0.1:8055         challtestsrv management API (/add-a, /clear-a, ...)
# Pebble validates challenges for real (PEBBLE_VA_ALWAYS_VALID is never set):
# HTTP-01 on port $HTTP_PORT (5002) and TLS-ALPN-01 on $TLS_PORT (5001) of the
# address the DNS gives, so the gateway under test listens there. If one of
# these ports is taken when Pebble starts, a free one is used instead; the env
# file says which. challtestsrv's own challenge servers are off.
#
# The env file ($STATE/pebble.env) sets SUMMONER_IT_ACME_DIR,
# SUMMONER_IT_ACME_CA_ROOT, SUMMONER_IT_ACME_MGMT, SUMMONER_IT_ACME_HTTP_PORT,
# SUMMONER_IT_ACME_TLS_PORT, SUMMONER_IT_ACME_CHALLTEST and SUMMONER_IT_ACME_DNS
# (internal/acmetest reads them).
#
# Idempotent and tolerant of leftovers: a running Pebble with the same config
# is reused; processes of the cached binaries left by an earlier run are
# ended. State in $SUMMONER_CI_STATE/pebble (default
# /var/tmp/summoner-ci/pebble), binaries in $SUMMONER_CI_CACHE/pebble-v2.10.1
# (default /var/cache/summoner-ci).
set -euo pipefail

STATE=${SUMMONER_CI_STATE:-/var/tmp/summoner-ci}
CACHE=${SUMMONER_CI_CACHE:-/var/cache/summoner-ci}
PEBBLE_VERSION=v2.10.1
BIN_DIR=$CACHE/pebble-$PEBBLE_VERSION
PEBBLE_BIN=$BIN_DIR/pebble
CHALL_BIN=$BIN_DIR/pebble-challtestsrv

DIR=$STATE/pebble
ENV_FILE=$STATE/pebble.env
CONF=$DIR/pebble-config.json
CERTS=$DIR/certs
CA_ROOT=$CERTS/pebble.minica.pem
PEBBLE_PID=$DIR/pebble.pid
PEBBLE_LOG=$DIR/pebble.log
CHALL_PID=$DIR/challtestsrv.pid
CHALL_LOG=$DIR/challtestsrv.log
PORTS_FILE=$DIR/ports # "HTTP_PORT TLS_PORT" of the running Pebble

ACME_ADDR=127.0.0.1:14000
MGMT_ADDR=127.0.0.1:15000
DNS_ADDR=127.0.0.1:8053
CHALL_MGMT_ADDR=127.0.0.1:8055
HTTP_PORT=5002
TLS_PORT=5001

log() { echo "pebble.sh: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# alive PID: the process exists and is not a zombie.
alive() {
  local st
  st=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# pid_of FILE BIN: the pid in FILE if that process is alive and runs BIN.
pid_of() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(head -n 1 "$1" 2>/dev/null)
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$2" ] || return 1
  echo "$pid"
}

# pids_running BIN: every live process running BIN (ours, from the cache).
pids_running() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$1" ] && alive "${p#/proc/}" && echo "${p#/proc/}"
  done
  return 0
}

# terminate PID NAME: SIGTERM, up to 10 s, then SIGKILL.
terminate() {
  local pid=$1 name=$2 i
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "warning: $name (pid $pid) still there after SIGKILL"
}

# stop_all BIN NAME PIDFILE: ends every process of BIN, leftovers included.
stop_all() {
  local pid
  for pid in $(pids_running "$1"); do terminate "$pid" "$2"; done
  rm -f "$3"
}

lock() {
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
}

need_go() {
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH=/usr/local/go/bin:$PATH
  fi
  command -v go >/dev/null || die "go is not on PATH"
}

# tcp_taken PORT: something listens on 127.0.0.1:PORT or on all addresses.
tcp_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port FROM: the first port from FROM up that nothing listens on.
free_port() {
  local p=$1
  while tcp_taken "$p"; do p=$((p + 1)); done
  echo "$p"
}

build() {
  if [ ! -x "$PEBBLE_BIN" ] || [ ! -x "$CHALL_BIN" ]; then
    need_go
    log "building pebble $PEBBLE_VERSION into $BIN_DIR"
    local t0=$SECONDS
    mkdir -p "$BIN_DIR" "$DIR"
    # Outside any module and ignoring the caller's GOFLAGS.
    (cd "$CACHE" && GOFLAGS='' GOWORK=off GOBIN="$BIN_DIR" go install \
      "github.com/letsencrypt/pebble/v2/cmd/pebble@$PEBBLE_VERSION" \
      "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$PEBBLE_VERSION") \
      >"$DIR/build.log" 2>&1 || {
      tail -n 30 "$DIR/build.log" >&2
      die "building pebble failed"
    }
    log "pebble built in $((SECONDS - t0))s"
  fi
  # Pebble's HTTPS certificate (localhost, 127.0.0.1) and the root that
  # signs it, from the module's source.
  if [ ! -s "$CERTS/cert.pem" ] || [ ! -s "$CERTS/key.pem" ] || [ ! -s "$CA_ROOT" ]; then
    need_go
    local src
    src=$(cd "$CACHE" && GOFLAGS='' GOWORK=off go mod download -json \
      "github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$src/test/certs" ] || die "pebble $PEBBLE_VERSION module source not found"
    mkdir -p "$CERTS"
    cp "$src/test/certs/localhost/cert.pem" "$src/test/certs/localhost/key.pem" "$src/test/certs/pebble.minica.pem" "$CERTS/"
    chmod 0644 "$CERTS"/*.pem
    chmod 0600 "$CERTS/key.pem"
  fi
}

# One profile only: Pebble picks a random one for an order that names none,
# and a 6-day "shortlived" certificate would trip expiry warnings at random.
write_config() {
  local tmp=$CONF.tmp
  cat >"$tmp" <<EOF
{
  "pebble": {
    "listenAddress": "$ACME_ADDR",
    "managementListenAddress": "$MGMT_ADDR",
    "certificate": "$CERTS/cert.pem",
    "privateKey": "$CERTS/key.pem",
    "httpPort": $HTTP_PORT,
    "tlsPort": $TLS_PORT,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false,
    "domainBlocklist": ["blocked-domain.example"],
    "retryAfter": {
      "authz": 3,
      "order": 5
    },
    "keyAlgorithm": "ecdsa",
    "profiles": {
      "default": {
        "description": "90 days",
        "validityPeriod": 7776000
      }
    }
  }
}
EOF
  if cmp -s "$tmp" "$CONF"; then rm -f "$tmp"; else mv "$tmp" "$CONF"; fi
}

acme_ping() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 --cacert "$CA_ROOT" "https://$ACME_ADDR/dir" 2>/dev/null)" = 200 ]
}

chall_ping() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$CHALL_MGMT_ADDR/" 2>/dev/null) || true
  [ -n "$code" ] && [ "$code" != 000 ]
}

# wait_up PID NAME LOG PING: until PING succeeds, or fails if PID dies.
wait_up() {
  local pid=$1 name=$2 logf=$3 ping=$4 deadline=$((SECONDS + 30))
  until "$ping"; do
    if ! alive "$pid"; then
      tail -n 20 "$logf" >&2 || true
      die "$name exited during startup (port taken?)"
    fi
    [ $SECONDS -lt $deadline ] || die "$name did not answer within 30s"
    sleep 0.1
  done
}

# launch NAME PIDFILE LOG PING CMD...: runs CMD in the background in its own
# session (no inherited fds, not even our lock), records its pid and waits
# until PING succeeds.
launch() {
  local name=$1 pidf=$2 logf=$3 ping=$4 pid
  shift 4
  setsid "$@" </dev/null >>"$logf" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$pidf"
  wait_up "$pid" "$name" "$logf" "$ping"
  log "$name up (pid $pid)"
}

chall_start() {
  local pid
  if pid=$(pid_of "$CHALL_PID" "$CHALL_BIN") && chall_ping; then
    log "challtestsrv already running (pid $pid)"
    return 0
  fi
  stop_all "$CHALL_BIN" challtestsrv "$CHALL_PID"
  log "starting challtestsrv (DNS $DNS_ADDR, management $CHALL_MGMT_ADDR; log: $CHALL_LOG)"
  launch challtestsrv "$CHALL_PID" "$CHALL_LOG" chall_ping \
    "$CHALL_BIN" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    -dnsserver "$DNS_ADDR" -management "$CHALL_MGMT_ADDR" \
    -http01 "" -https01 "" -tlsalpn01 "" -doh ""
}

pebble_start() {
  local pid
  # A running Pebble keeps its challenge ports; a new one takes the defaults,
  # or free ports near them if something else holds them.
  if pid=$(pid_of "$PEBBLE_PID" "$PEBBLE_BIN") && [ -s "$PORTS_FILE" ]; then
    read -r HTTP_PORT TLS_PORT <"$PORTS_FILE"
    write_config
    if [ "$(stat -c %Y "$CONF")" -le "$(stat -c %Y "$PEBBLE_PID")" ] && acme_ping; then
      log "pebble already running (pid $pid)"
      return 0
    fi
  fi
  stop_all "$PEBBLE_BIN" pebble "$PEBBLE_PID"
  HTTP_PORT=5002
  TLS_PORT=5001
  if tcp_taken "$HTTP_PORT"; then
    HTTP_PORT=$(free_port 5102)
    log "warning: port 5002 is taken: HTTP-01 validation on $HTTP_PORT"
  fi
  if tcp_taken "$TLS_PORT"; then
    TLS_PORT=$(free_port 5101)
    [ "$TLS_PORT" != "$HTTP_PORT" ] || TLS_PORT=$(free_port $((HTTP_PORT + 1)))
    log "warning: port 5001 is taken: TLS-ALPN-01 validation on $TLS_PORT"
  fi
  write_config
  echo "$HTTP_PORT $TLS_PORT" >"$PORTS_FILE"
  log "starting pebble on $ACME_ADDR (challenges on :$HTTP_PORT and :$TLS_PORT; log: $PEBBLE_LOG)"
  # Real validation at full speed; no random badNonce rejections (5% by
  # default), so that a test's failure is the code's, not the dice's.
  launch pebble "$PEBBLE_PID" "$PEBBLE_LOG" acme_ping \
    env -u PEBBLE_VA_ALWAYS_VALID PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT="${PEBBLE_WFE_NONCEREJECT:-0}" \
    "$PEBBLE_BIN" -config "$CONF" -dnsserver "$DNS_ADDR"
}

write_env() {
  [ -s "$PORTS_FILE" ] && read -r HTTP_PORT TLS_PORT <"$PORTS_FILE"
  mkdir -p "$STATE"
  cat >"$ENV_FILE.tmp" <<EOF
export SUMMONER_IT_ACME_DIR=https://$ACME_ADDR/dir
export SUMMONER_IT_ACME_CA_ROOT=$CA_ROOT
export SUMMONER_IT_ACME_MGMT=https://$MGMT_ADDR
export SUMMONER_IT_ACME_HTTP_PORT=$HTTP_PORT
export SUMMONER_IT_ACME_TLS_PORT=$TLS_PORT
export SUMMONER_IT_ACME_CHALLTEST=http://$CHALL_MGMT_ADDR
export SUMMONER_IT_ACME_DNS=$DNS_ADDR
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  cat "$ENV_FILE"
}

case "${1:-}" in
start)
  t0=$SECONDS
  lock
  command -v curl >/dev/null || die "curl is missing"
  build
  chall_start
  pebble_start
  write_env >/dev/null
  log "ready in $((SECONDS - t0))s; env file: $ENV_FILE"
  ;;
env)
  write_env
  ;;
stop)
  lock
  stop_all "$PEBBLE_BIN" pebble "$PEBBLE_PID"
  stop_all "$CHALL_BIN" challtestsrv "$CHALL_PID"
  ;;
*)
  echo "usage: $0 start|stop|env" >&2
  exit 2
  ;;
esac
