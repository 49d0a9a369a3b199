#!/usr/bin/env bash
# Real services for the integration tests: a private PostgreSQL cluster and a
# Mattermost v6.7.2 server on loopback, provisioned with fixed test accounts.
#
#   bash .ci/services.sh start               # idempotent; writes $STATE/it.env
#   bash .ci/services.sh restart-mattermost  # used by tests via SUMMONER_IT_MM_RESTART
#   bash .ci/services.sh stop-mattermost     # an outage, for the outbox tests
#   bash .ci/services.sh start-mattermost
#   bash .ci/services.sh stop
#   bash .ci/services.sh env                 # prints the env file
#
# Needs root (apt-get, and PostgreSQL runs as the `postgres` OS user).
# State lives in $SUMMONER_CI_STATE (default /var/tmp/summoner-ci) and is
# reused across runs; delete that folder for a clean slate.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
STATE=${SUMMONER_CI_STATE:-/var/tmp/summoner-ci}
ENV_FILE=$STATE/it.env

PG_PORT=55432
PG_DIR=$STATE/pg # owned by postgres; holds the unix socket and the log
PG_DATA=$PG_DIR/data
DB_NAME=mattermost
DB_USER=mmuser
DB_PASS=mmuser-pass

MM_ADDR=127.0.0.1:18065
MM_URL=http://$MM_ADDR
MM_DIR=$STATE/mm
MM_PID=$MM_DIR/mattermost.pid
MM_STOP_TIMEOUT=20
MM_START_TIMEOUT=120

log() { echo "services: $*" >&2; }

# alive PID: the process exists and is not a zombie (kill -0 succeeds on
# zombies, and PID 1 of a container may be slow to reap them).
alive() {
  local st
  st=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
die() {
  log "error: $*"
  exit 1
}

# --- packages --------------------------------------------------------------

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install_packages() {
  local missing=()
  pg_bin >/dev/null || missing+=(postgresql)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}) and not root"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  pg_bin >/dev/null || die "PostgreSQL binaries still missing after install"
}

# --- PostgreSQL ------------------------------------------------------------

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

pg_ready() { "$(pg_bin)/pg_isready" -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres 2>/dev/null; }

psql_admin() { "$(pg_bin)/psql" -X -q -h "$PG_DIR" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }

pg_start() {
  local bin ver
  bin=$(pg_bin)
  ver=$("$bin/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
  if pg_ready; then
    log "postgresql already running"
  else
    if [ -f "$PG_DATA/PG_VERSION" ] && [ "$(cat "$PG_DATA/PG_VERSION")" != "$ver" ]; then
      log "state dir holds a PostgreSQL $(cat "$PG_DATA/PG_VERSION") cluster, have $ver: recreating"
      rm -rf "$PG_DIR"
    fi
    mkdir -p "$PG_DIR"
    chown postgres:postgres "$PG_DIR"
    chmod 0700 "$PG_DIR"
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
      log "initdb $PG_DATA"
      rm -rf "$PG_DATA"
      as_postgres "$bin/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 ||
        { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    fi
    local pid=""
    [ -f "$PG_DATA/postmaster.pid" ] && pid=$(head -n 1 "$PG_DATA/postmaster.pid")
    if [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
      # A live postmaster that is not ready yet (starting, recovering).
      log "postgresql (pid $pid) is starting: waiting"
      local i
      for ((i = 0; i < 120; i++)); do
        pg_ready && break
        sleep 0.5
      done
      pg_ready || die "postgresql (pid $pid) runs but does not accept connections"
    else
      pg_cleanup_stale
      pg_launch
    fi
  fi
  pg_provision
}

# After a killed postmaster (or a reboot), the lock files (postmaster.pid and
# the socket's .lock) can name a zombie (PID 1 here reaps lazily, and kill -0
# succeeds on zombies) or a reused pid, and orphaned backends can hold the old
# shared memory: all of these block the start. Only called when no live
# postmaster owns the data dir. Backends are found by their working directory.
pg_cleanup_stale() {
  local p pids=() i
  rm -f "$PG_DATA/postmaster.pid" "$PG_DIR/.s.PGSQL.$PG_PORT" "$PG_DIR/.s.PGSQL.$PG_PORT.lock"
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/cwd" 2>/dev/null)" = "$PG_DATA" ] && pids+=("${p#/proc/}")
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  log "ending ${#pids[@]} leftover postgres process(es) of $PG_DATA"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    sleep 0.1
    for p in "${pids[@]}"; do alive "$p" && continue 2; done
    return 0
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 1
}

pg_launch() {
  local bin
  bin=$(pg_bin)
  log "starting postgresql on 127.0.0.1:$PG_PORT"
  # Settings on the command line so that a reused cluster always gets the
  # current ones. Durability is traded for speed: this is throwaway CI data.
  # 9>&- keeps the server from inheriting our lock.
  local opts="-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$PG_DIR"
  opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
  as_postgres "$bin/pg_ctl" start -D "$PG_DATA" -l "$PG_DIR/postgresql.log" -w -t 60 -o "$opts" \
    >/dev/null 9>&- || { tail -n 30 "$PG_DIR/postgresql.log" >&2; die "postgresql did not start"; }
}

# Role and database, created once.
pg_provision() {
  if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" ]; then
    log "creating role $DB_USER"
    psql_admin -c "CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASS'"
  fi
  if [ -z "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" ]; then
    log "creating database $DB_NAME"
    psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
  fi
}

pg_stop() {
  local bin
  bin=$(pg_bin) || return 0
  if [ -f "$PG_DATA/postmaster.pid" ]; then
    log "stopping postgresql"
    as_postgres "$bin/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null 2>&1 || true
  fi
}

# --- Mattermost ------------------------------------------------------------

mm_build() {
  # Prints the folder holding bin/mattermost, i18n/ and templates/.
  MM_HOME=$(bash "$SCRIPT_DIR/build-mattermost.sh")
  [ -x "$MM_HOME/bin/mattermost" ] || die "build-mattermost.sh gave no binary"
}

# The pid from the pid file if that process is a live Mattermost server.
mm_pid() {
  local pid
  [ -f "$MM_PID" ] || return 1
  pid=$(cat "$MM_PID")
  [ -n "$pid" ] && alive "$pid" || return 1
  case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
  */bin/mattermost) echo "$pid" ;;
  *) return 1 ;;
  esac
}

mm_ping() {
  curl -fsS -o /dev/null --max-time 3 "$MM_URL/api/v4/system/ping" 2>/dev/null
}

mm_logs() {
  log "last log lines ($MM_DIR):"
  tail -n 40 "$MM_DIR/stdout.log" >&2 2>/dev/null || true
  tail -n 40 "$MM_DIR/logs/mattermost.log" >&2 2>/dev/null || true
}

mm_wait() {
  local pid=$1 deadline=$((SECONDS + MM_START_TIMEOUT))
  until mm_ping; do
    if ! alive "$pid"; then
      mm_logs
      die "mattermost exited during startup"
    fi
    if [ $SECONDS -ge $deadline ]; then
      mm_logs
      die "mattermost did not answer $MM_URL/api/v4/system/ping within ${MM_START_TIMEOUT}s"
    fi
    sleep 0.5
  done
}

mm_launch() {
  mkdir -p "$MM_DIR"/{data,logs,plugins,client-plugins,import,export,compliance}
  log "starting mattermost on $MM_ADDR"
  local t0=$SECONDS pid
  # A clean environment, so the settings are exactly these whoever calls us
  # (for instance a Go test via SUMMONER_IT_MM_RESTART). The server runs in
  # its own session with no inherited fds (not even our lock), so callers that
  # capture our output don't wait for it.
  # MM_JOBSETTINGS_RUNJOBS=false: v6.7.2's job watcher sleeps a random 0-15 s
  # at startup and shutdown waits for that sleep, which made restarts take up
  # to 15 s. No job worker matters to a bot (they are retention, exports,
  # background data migrations for old data, ...).
  (
    cd "$MM_HOME"
    # Close whatever else the caller left open (a test runner's flock fd
    # would otherwise be held by the server for as long as it runs).
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
    done
    exec env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$MM_DIR" TZ=UTC \
      MM_SQLSETTINGS_DRIVERNAME=postgres \
      MM_SQLSETTINGS_DATASOURCE="postgres://$DB_USER:$DB_PASS@127.0.0.1:$PG_PORT/$DB_NAME?sslmode=disable&connect_timeout=10" \
      MM_SERVICESETTINGS_LISTENADDRESS="$MM_ADDR" \
      MM_SERVICESETTINGS_SITEURL="$MM_URL" \
      MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION=true \
      MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS=true \
      MM_SERVICESETTINGS_ENABLEINCOMINGWEBHOOKS=true \
      MM_SERVICESETTINGS_ENABLECOMMANDS=true \
      MM_SERVICESETTINGS_ENABLEPOSTUSERNAMEOVERRIDE=true \
      MM_SERVICESETTINGS_ENABLEPOSTICONOVERRIDE=true \
      MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS='127.0.0.1 localhost' \
      MM_SERVICESETTINGS_ENABLELOCALMODE=false \
      MM_SERVICESETTINGS_ENABLESECURITYFIXALERT=false \
      MM_PLUGINSETTINGS_ENABLE=false \
      MM_PLUGINSETTINGS_ENABLEMARKETPLACE=false \
      MM_PLUGINSETTINGS_ENABLEREMOTEMARKETPLACE=false \
      MM_PLUGINSETTINGS_AUTOMATICPREPACKAGEDPLUGINS=false \
      MM_PLUGINSETTINGS_DIRECTORY="$MM_DIR/plugins" \
      MM_PLUGINSETTINGS_CLIENTDIRECTORY="$MM_DIR/client-plugins" \
      MM_EMAILSETTINGS_SENDEMAILNOTIFICATIONS=false \
      MM_EMAILSETTINGS_REQUIREEMAILVERIFICATION=false \
      MM_TEAMSETTINGS_ENABLEOPENSERVER=true \
      MM_RATELIMITSETTINGS_ENABLE=false \
      MM_JOBSETTINGS_RUNJOBS=false \
      MM_ANNOUNCEMENTSETTINGS_ADMINNOTICESENABLED=false \
      MM_ANNOUNCEMENTSETTINGS_USERNOTICESENABLED=false \
      MM_LOGSETTINGS_ENABLECONSOLE=false \
      MM_LOGSETTINGS_ENABLEFILE=true \
      MM_LOGSETTINGS_FILELOCATION="$MM_DIR/logs" \
      MM_LOGSETTINGS_ENABLEDIAGNOSTICS=false \
      MM_NOTIFICATIONLOGSETTINGS_FILELOCATION="$MM_DIR/logs" \
      MM_FILESETTINGS_DIRECTORY="$MM_DIR/data/" \
      MM_IMPORTSETTINGS_DIRECTORY="$MM_DIR/import" \
      MM_EXPORTSETTINGS_DIRECTORY="$MM_DIR/export" \
      MM_COMPLIANCESETTINGS_DIRECTORY="$MM_DIR/compliance" \
      setsid "$MM_HOME/bin/mattermost" server --config "$MM_DIR/config.json"
  ) </dev/null >>"$MM_DIR/stdout.log" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$MM_PID"
  mm_wait "$pid"
  log "mattermost up (pid $pid) in $((SECONDS - t0))s"
}

mm_start() {
  local pid
  if pid=$(mm_pid); then
    if mm_ping; then
      log "mattermost already running (pid $pid)"
      return 0
    fi
    log "mattermost (pid $pid) runs but does not answer yet: waiting"
    if (MM_START_TIMEOUT=30 mm_wait "$pid") 2>/dev/null; then
      return 0
    fi
    mm_stop
  fi
  if mm_ping; then
    die "something else answers on $MM_ADDR (no pid in $MM_PID); stop it first"
  fi
  mm_launch
}

mm_stop() {
  local pid i
  pid=$(mm_pid) || {
    rm -f "$MM_PID"
    return 0
  }
  log "stopping mattermost (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < MM_STOP_TIMEOUT * 10; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "mattermost ignored SIGTERM for ${MM_STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.1; done
  fi
  rm -f "$MM_PID"
}

# --- provisioning ----------------------------------------------------------

provision() {
  log "provisioning test accounts"
  (cd "$ROOT" && go run ./internal/mmtest/provision -url "$MM_URL" -out "$ENV_FILE" \
    -restart "bash $SCRIPT_DIR/services.sh restart-mattermost") 9>&- ||
    die "provisioning failed"
}

# --- main ------------------------------------------------------------------

lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
}

cmd=${1:-}
case "$cmd" in
start)
  t0=$SECONDS
  install_packages
  lock
  pg_start
  mm_build
  mm_start
  provision
  log "ready in $((SECONDS - t0))s; env file: $ENV_FILE"
  ;;
stop-mattermost)
  lock
  mm_stop
  ;;
start-mattermost)
  lock
  pg_ready || die "postgresql is not running; use: $0 start"
  mm_build
  mm_start
  ;;
restart-mattermost)
  lock
  pg_ready || die "postgresql is not running; use: $0 start"
  mm_build
  mm_stop
  mm_launch
  ;;
stop)
  lock
  mm_stop
  pg_stop
  ;;
env)
  [ -f "$ENV_FILE" ] || die "no env file at $ENV_FILE; run: $0 start"
  cat "$ENV_FILE"
  ;;
*)
  echo "usage: $0 start|stop|restart-mattermost|env" >&2
  exit 2
  ;;
esac
