#!/usr/bin/env bash
# Mimics the official postgres image's entrypoint (the parts tests rely on).
set -Eeo pipefail

log() { echo "docker-entrypoint: $*" >&2; }

# file_env VAR [DEFAULT]: VAR or the contents of the file named by VAR_FILE.
file_env() {
  local var=$1 fileVar="${1}_FILE" def=${2:-} val
  if [ -n "${!var:-}" ] && [ -n "${!fileVar:-}" ]; then
    log "error: both $var and $fileVar are set (but are exclusive)"
    exit 1
  fi
  val=$def
  if [ -n "${!var:-}" ]; then
    val=${!var}
  elif [ -n "${!fileVar:-}" ]; then
    val=$(<"${!fileVar}")
  fi
  export "$var"="$val"
  unset "$fileVar"
}

setup_env() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
  export PGDATA=${PGDATA:-/var/lib/postgresql/data}
}

# As root: own the data and socket dirs, then come back as postgres.
as_root() {
  mkdir -p "$PGDATA"
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 00700 "$PGDATA" || :
  mkdir -p /var/run/postgresql
  chown postgres:postgres /var/run/postgresql
  chmod 03775 /var/run/postgresql
  export HOME=/var/lib/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
}

init_cluster() {
  if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    cat >&2 <<'MSG'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".
       (or set POSTGRES_HOST_AUTH_METHOD=trust to allow all connections
       without a password: not recommended)
MSG
    exit 1
  fi
  mkdir -p "$PGDATA"
  chmod 00700 "$PGDATA" || :
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    -E UTF8 --locale=C.UTF-8 $POSTGRES_INITDB_ARGS -D "$PGDATA"
  # initdb trusts the local socket and loopback; everyone else needs the password.
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
  grep -q "^listen_addresses" "$PGDATA/postgresql.conf" ||
    echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"

  # A temporary server on the socket only, for the database and init scripts.
  PGUSER=$POSTGRES_USER pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  local psql=(psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
  if [ "$POSTGRES_DB" != postgres ] &&
    [ -z "$("${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" -tA <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")" ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
    *.sh)
      if [ -x "$f" ]; then
        log "running $f"
        "$f"
      else
        log "sourcing $f"
        # shellcheck disable=SC1090
        . "$f"
      fi
      ;;
    *.sql) log "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
    *.sql.gz) log "running $f"; gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
    *.sql.xz) log "running $f"; xzcat "$f" | "${psql[@]}" --dbname "$POSTGRES_DB" ;;
    *) if [ -e "$f" ]; then log "ignoring $f"; fi ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo
  echo 'PostgreSQL init process complete; ready for start up.'
  echo
}

main() {
  if [ "${1:0:1}" = - ]; then
    set -- postgres "$@"
  fi
  if [ "$1" != postgres ]; then
    exec "$@"
  fi
  setup_env
  if [ "$(id -u)" = 0 ]; then
    as_root "$@"
  fi
  if [ -s "$PGDATA/PG_VERSION" ]; then
    echo
    echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
    echo
  else
    init_cluster
  fi
  unset PGPASSWORD
  exec "$@"
}

main "$@"
