#!/usr/bin/env bash
# Mimics the official mariadb (and mysql) image's entrypoint, the parts
# tests rely on. The first start installs the system tables with
# mariadb-install-db and hands the users and the database to the real
# server as an --init-file (one statement per line), so there is no
# temporary server and the database is ready in about a second.
set -Eeo pipefail

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock
# The init file holds passwords: only the first start of a new data dir
# uses it, and every start removes what an earlier one left.
INIT_FILE=/run/mysqld/docker-init.sql

log() { echo "docker-entrypoint: $*" >&2; }

# file_env VAR ALIAS [DEFAULT]: VAR, or ALIAS (the MYSQL_* name), or the
# contents of the file named by VAR_FILE or ALIAS_FILE.
file_env() {
  local var=$1 alias=$2 def=${3:-} val n f
  val=$def
  for n in "$alias" "$var"; do # the later wins: MARIADB_* over MYSQL_*
    f=${n}_FILE
    if [ -n "${!n:-}" ] && [ -n "${!f:-}" ]; then
      log "error: both $n and $f are set (but are exclusive)"
      exit 1
    fi
    if [ -n "${!n:-}" ]; then
      val=${!n}
    elif [ -n "${!f:-}" ]; then
      val=$(<"${!f}")
    fi
    unset "$f"
  done
  export "$var"="$val"
}

setup_env() {
  file_env MARIADB_ROOT_PASSWORD MYSQL_ROOT_PASSWORD
  file_env MARIADB_ALLOW_EMPTY_ROOT_PASSWORD MYSQL_ALLOW_EMPTY_PASSWORD
  file_env MARIADB_RANDOM_ROOT_PASSWORD MYSQL_RANDOM_ROOT_PASSWORD
  file_env MARIADB_DATABASE MYSQL_DATABASE
  file_env MARIADB_USER MYSQL_USER
  file_env MARIADB_PASSWORD MYSQL_PASSWORD
  file_env MARIADB_ROOT_HOST MYSQL_ROOT_HOST %
}

# sql_str S: S as a single-quoted SQL string.
sql_str() {
  local s=${1//\\/\\\\}
  printf "'%s'" "${s//\'/\\\'}"
}

# sql_id S: S as a backquoted SQL identifier.
# shellcheck disable=SC2016 # the backquotes are SQL's
sql_id() { printf '`%s`' "${1//\`/\`\`}"; }

# As root: own the data and socket dirs, then come back as mysql.
as_root() {
  mkdir -p "$DATADIR" /run/mysqld
  find "$DATADIR" /run/mysqld \! -user mysql -exec chown mysql:mysql '{}' +
  exec setpriv --reuid=mysql --regid=mysql --init-groups -- "${BASH_SOURCE[0]}" "$@"
}

# init_db writes the system tables and $INIT_FILE, and sets INIT_ARGS to
# the server option that runs it.
init_db() {
  if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
    cat >&2 <<'MSG'
error: Database is uninitialized and password option is not specified
	You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD
MSG
    exit 1
  fi
  if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
    MARIADB_ROOT_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    echo "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
  fi
  log "installing the system tables in $DATADIR"
  mariadb-install-db --datadir="$DATADIR" --rpm --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve --cross-bootstrap >/dev/null

  # The official image's health check logs in with its own USAGE-only
  # account, whose password it keeps in the data dir.
  local hc_pw
  hc_pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
  (
    umask 077
    printf '[mariadb-client]\nport=3306\nsocket=%s\nuser=healthcheck\npassword=%s\n' "$SOCKET" "$hc_pw" >"$DATADIR/.my-healthcheck.cnf"
  )

  local root_pw db user
  root_pw=$(sql_str "$MARIADB_ROOT_PASSWORD")
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    # Anonymous users shadow every named one connecting from localhost
    # (''@localhost is more specific than app@%): without this app is denied.
    echo "DROP USER IF EXISTS ''@'localhost', root@'127.0.0.1', root@'::1';"
    echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS ''''@''', @@hostname, '''');"
    echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@''', @@hostname, '''');"
    echo "SET PASSWORD FOR 'root'@'localhost' = PASSWORD($root_pw);"
    if [ "$MARIADB_ROOT_HOST" != localhost ]; then
      echo "CREATE USER 'root'@$(sql_str "$MARIADB_ROOT_HOST") IDENTIFIED BY $root_pw;"
      echo "GRANT ALL ON *.* TO 'root'@$(sql_str "$MARIADB_ROOT_HOST") WITH GRANT OPTION;"
    fi
    echo "CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY $(sql_str "$hc_pw");"
    echo "CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY $(sql_str "$hc_pw");"
    echo "CREATE USER 'healthcheck'@'::1' IDENTIFIED BY $(sql_str "$hc_pw");"
    if [ -n "$MARIADB_DATABASE" ]; then
      db=$(sql_id "$MARIADB_DATABASE")
      echo "CREATE DATABASE IF NOT EXISTS $db;"
    fi
    if [ -n "$MARIADB_USER" ] && [ -n "$MARIADB_PASSWORD" ]; then
      user=$(sql_str "$MARIADB_USER")
      echo "CREATE USER $user@'%' IDENTIFIED BY $(sql_str "$MARIADB_PASSWORD");"
      if [ -n "$MARIADB_DATABASE" ]; then
        echo "GRANT ALL ON $db.* TO $user@'%';"
      fi
    fi
  } >"$INIT_FILE"
  chmod 0600 "$INIT_FILE"
  if compgen -G '/docker-entrypoint-initdb.d/*' >/dev/null; then
    log "warning: /docker-entrypoint-initdb.d is not supported by this test image; ignored"
  fi
  INIT_ARGS=("--init-file=$INIT_FILE")
}

main() {
  if [ "${1:0:1}" = - ]; then
    set -- mariadbd "$@"
  fi
  case "$1" in
  mariadbd | mysqld) ;;
  *) exec "$@" ;;
  esac
  setup_env
  if [ "$(id -u)" = 0 ]; then
    as_root "$@"
  fi
  rm -f "$INIT_FILE"
  INIT_ARGS=()
  if [ -d "$DATADIR/mysql" ]; then
    log "$DATADIR already holds a database: skipping initialization"
  else
    init_db
  fi
  exec mariadbd "${@:2}" "${INIT_ARGS[@]}"
}

main "$@"
