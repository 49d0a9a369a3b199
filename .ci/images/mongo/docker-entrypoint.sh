#!/bin/sh
# Starts FerretDB where the official mongo image starts mongod: on :27017,
# data in /data/db, as the mongodb user, with the root user of
# MONGO_INITDB_ROOT_USERNAME/PASSWORD if given (see the Dockerfile).
set -eu

log() { echo "docker-entrypoint: $*" >&2; }

# file_env VAR: VAR, or the contents of the file named by VAR_FILE.
file_env() {
  eval "v=\${$1:-} f=\${$1_FILE:-}"
  if [ -n "$v" ] && [ -n "$f" ]; then
    log "error: both $1 and $1_FILE are set (but are exclusive)"
    exit 1
  fi
  if [ -n "$f" ]; then
    v=$(cat "$f")
  fi
  unset "$1_FILE"
  export "$1=$v"
}

case "${1:-mongod}" in
mongod | -*) ;;
*) exec "$@" ;;
esac

file_env MONGO_INITDB_ROOT_USERNAME
file_env MONGO_INITDB_ROOT_PASSWORD
if [ -n "$MONGO_INITDB_ROOT_USERNAME" ] && [ -z "$MONGO_INITDB_ROOT_PASSWORD" ] ||
  [ -z "$MONGO_INITDB_ROOT_USERNAME" ] && [ -n "$MONGO_INITDB_ROOT_PASSWORD" ]; then
  log "error: set both MONGO_INITDB_ROOT_USERNAME and MONGO_INITDB_ROOT_PASSWORD, or neither"
  exit 1
fi

if [ "$(id -u)" = 0 ]; then
  mkdir -p /data/db /data/configdb
  find /data/db /data/configdb ! -user mongodb -exec chown mongodb:mongodb '{}' +
  # busybox's su keeps the environment and execs, so the server stays PID 1
  # (busybox has no setuidgid, and its setpriv cannot change users). Not
  # "$@": su would take mongod's flags for its own, and they are dropped
  # anyway.
  # shellcheck disable=SC2016 # expanded by the shell su starts
  exec su -s /bin/sh mongodb -c 'exec "$0" mongod' "$0"
fi

# mongod's flags (--oplogSize, --quiet, --bind_ip_all, ...) mean nothing to
# FerretDB and are dropped. Settings travel in FERRETDB_* variables, so the
# password stays off the command line. Log level error: at warn it logs every
# command it lacks, such as the endSessions each health check ends with.
export FERRETDB_LISTEN_ADDR=:27017 \
  FERRETDB_HANDLER=sqlite \
  FERRETDB_SQLITE_URL=file:/data/db/ \
  FERRETDB_STATE_DIR=/data/configdb \
  FERRETDB_TELEMETRY=disable \
  FERRETDB_DEBUG_ADDR=- \
  FERRETDB_LOG_LEVEL="${FERRETDB_LOG_LEVEL:-error}"
if [ -n "$MONGO_INITDB_ROOT_USERNAME" ]; then
  # The setup user is created only if admin has no users yet: later starts
  # keep the first password, as mongod keeps its users.
  export FERRETDB_TEST_ENABLE_NEW_AUTH=true \
    FERRETDB_SETUP_DATABASE=admin \
    FERRETDB_SETUP_USERNAME="$MONGO_INITDB_ROOT_USERNAME" \
    FERRETDB_SETUP_PASSWORD="$MONGO_INITDB_ROOT_PASSWORD"
fi
exec ferretdb
