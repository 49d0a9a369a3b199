#!/usr/bin/env bash
# The official mariadb image's health check, the tests that catalog
# minions use: healthcheck.sh [--su-mysql] [--connect] [--innodb_initialized]
# [--innodb_buffer_pool_loaded]. Each test must pass; it logs in as the
# USAGE-only healthcheck account the entrypoint made at the first start.
set -eo pipefail

DATADIR=/var/lib/mysql
CNF=$DATADIR/.my-healthcheck.cnf

query() {
  [ -r "$CNF" ] || {
    echo "healthcheck: $CNF is missing (database not initialized yet)" >&2
    return 1
  }
  mariadb --defaults-extra-file="$CNF" --skip-column-names --batch -e "$1"
}

connect() {
  # Over TCP, as clients of other containers connect.
  mariadb --defaults-extra-file="$CNF" --protocol=tcp -h 127.0.0.1 --batch -e 'SELECT 1' >/dev/null
}

innodb_initialized() {
  [ "$(query "SELECT 1 FROM information_schema.ENGINES WHERE engine = 'InnoDB' AND support IN ('YES', 'DEFAULT', 'ENABLED')")" = 1 ]
}

innodb_buffer_pool_loaded() {
  [ "$(query "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'Innodb_buffer_pool_load_status'")" != "" ]
}

[ $# -gt 0 ] || set -- --connect
for arg; do
  case "$arg" in
  --su-mysql | --su=* | --no-defaults | --defaults-file=* | --defaults-extra-file=*) ;; # the checks need no other user or file here
  --datadir=*) DATADIR=${arg#--datadir=} CNF=$DATADIR/.my-healthcheck.cnf ;;
  --connect) connect || { echo "healthcheck: connect failed" >&2; exit 1; } ;;
  --innodb_initialized) innodb_initialized || { echo "healthcheck: innodb not initialized" >&2; exit 1; } ;;
  --innodb_buffer_pool_loaded) innodb_buffer_pool_loaded || { echo "healthcheck: buffer pool not loaded" >&2; exit 1; } ;;
  *)
    echo "healthcheck: unsupported option $arg (this test image knows --connect, --innodb_initialized, --innodb_buffer_pool_loaded)" >&2
    exit 1
    ;;
  esac
done
