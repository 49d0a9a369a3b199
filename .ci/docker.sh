#!/usr/bin/env bash
# Docker for the integration tests: the engine, a local registry on
# 127.0.0.1:5000 and the test images pushed to it (Docker Hub is not reachable
# from CI, so every image is built here, once, and reused by tag).
#
#   bash .ci/docker.sh start      # `summoner bootstrap --only docker`: installs
#                                 # docker.io if needed, runs dockerd
#   bash .ci/docker.sh registry   # builds and runs distribution v3 on 127.0.0.1:5000
#   bash .ci/docker.sh images     # builds missing/stale test images, pushes them
#   bash .ci/docker.sh mongo-bins # builds the mongo image's Go programs only (no Docker)
#   bash .ci/docker.sh env        # writes and prints $STATE/docker.env
#   bash .ci/docker.sh all        # start + registry + images + env (what CI calls)
#   bash .ci/docker.sh stop       # stops the registry and dockerd
#
# Images (every test image carries the label summoner.test=1):
#   local/debian:bookworm-minbase              debootstrap base (not pushed)
#   127.0.0.1:5000/summoner/testapp:1.0        busybox httpd on :8080
#   127.0.0.1:5000/summoner/testapp:1.1        same, "testapp 1.1"
#   127.0.0.1:5000/summoner/testapp:2.0-broken exits 1 at once
#   127.0.0.1:5000/summoner/testapp:1.2        exits 1 at once too (a bad update in semver)
#   127.0.0.1:5000/summoner/testapp:1.3-migrates  migrates testmin's database, then exits 1
#   127.0.0.1:5000/library/postgres:15.10      Debian's PostgreSQL 15, official-like entrypoint
#   127.0.0.1:5000/library/postgres:15.8       the same image, under the mattermost catalog's tag
#   127.0.0.1:5000/library/mariadb:10.11.9     Debian's MariaDB 10.11, official-like entrypoint
#   127.0.0.1:5000/library/mysql:8.0.39        the same MariaDB image, for minions pinning mysql
#   127.0.0.1:5000/library/mongo:6.0.18        FerretDB v1 (SQLite) + mongodump/mongorestore
#   127.0.0.1:5000/summoner/echo:1.0           internal/echoserver (gateway tests), $SERVICE on :8080
#   127.0.0.1:5000/library/nginx:1.27.2-alpine the same program as statik's stand-in, on :80
#   127.0.0.1:5000/mattermost/mattermost-team-edition:9.11.2
#                                              the Mattermost v6.7.2 server services.sh runs
#                                              (.ci/build-mattermost.sh), laid out like the
#                                              official image (uid 2000, ping healthcheck)
# Their build contexts are in .ci/images/<name>/. An image is rebuilt only when
# missing or when its context changed (label summoner.test.hash). The mongo
# image's Go programs are built here on the host, once per version, from the
# Go module proxy (MongoDB is not in Debian), and copied into its context;
# so is the echo image's, from this module (internal/echoserver/cmd/echo).
#
# Needs root. Idempotent and tolerant of leftovers (a running engine or
# registry is reused). State lives in $SUMMONER_CI_STATE (default
# /var/tmp/summoner-ci), built tools in $SUMMONER_CI_CACHE (default
# /var/cache/summoner-ci); images stay in Docker's own store.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${SUMMONER_CI_STATE:-/var/tmp/summoner-ci}
CACHE=${SUMMONER_CI_CACHE:-/var/cache/summoner-ci}
ENV_FILE=$STATE/docker.env

DOCKERD_PID=$STATE/dockerd.pid
DOCKERD_LOG=$STATE/dockerd.log
DOCKER_STOP_TIMEOUT=60

REGISTRY_VERSION=v3.1.2
REGISTRY_BIN=$CACHE/bin/registry
REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_DIR=$STATE/registry # the blobs
REGISTRY_CONF=$STATE/registry.yml
REGISTRY_PID=$STATE/registry.pid
REGISTRY_LOG=$STATE/registry.log

BASE_IMAGE=local/debian:bookworm-minbase
BASE_TAR=$CACHE/debian-bookworm-minbase.tar
DEBIAN_MIRROR=http://deb.debian.org/debian
IMAGES_DIR=$SCRIPT_DIR/images
BUILD_LOGS=$STATE/image-builds

log() { echo "docker.sh: $*" >&2; }
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

# pid_of FILE COMM: the pid in FILE if that process is alive and named COMM.
pid_of() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(head -n 1 "$1" 2>/dev/null)
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  echo "$pid"
}

# terminate PID NAME TIMEOUT: SIGTERM, wait, then SIGKILL.
terminate() {
  local pid=$1 name=$2 timeout=$3 i
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "$name ignored SIGTERM for ${timeout}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  log "warning: $name (pid $pid) still there after SIGKILL"
}

lock() {
  mkdir -p "$STATE"
  exec 9>"$STATE/.docker.lock"
  flock 9
}

# --- packages --------------------------------------------------------------

APT_UPDATED=
apt_install() {
  [ "$(id -u)" -eq 0 ] || die "missing packages ($*) and not root"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$APT_UPDATED" ]; then
    apt-get update -q >&2
    APT_UPDATED=1
  fi
  log "installing $*"
  # No recommends: they pull needrestart (which hooks into every later apt
  # run and may restart services) and apparmor (this kernel has none).
  apt-get install -y -q --no-install-recommends "$@" >&2
}

# --- Docker engine ---------------------------------------------------------

docker_up() { docker info >/dev/null 2>&1; }

# docker_start goes through Summoner's own bootstrap step, so every fresh
# machine runs the real install path: it installs docker.io if dockerd is
# missing, merges log rotation into /etc/docker/daemon.json (never restarting
# a running engine), starts dockerd in the background (no systemd here; its
# log is $DOCKERD_LOG), cleaning stale pid files first, and waits for the
# socket; on a machine where Docker is up it says "already done".
BOOTSTRAP_BIN=$CACHE/summoner-bootstrap
docker_start() {
  need_go
  mkdir -p "$CACHE" "$STATE"
  (cd "$SCRIPT_DIR/.." && go build -o "$BOOTSTRAP_BIN.$$" ./cmd/bot) >&2 || die "building summoner failed"
  mv "$BOOTSTRAP_BIN.$$" "$BOOTSTRAP_BIN"
  # No inherited lock (fd 9): a dockerd started from there must not hold it.
  "$BOOTSTRAP_BIN" bootstrap --only docker --dockerd-log "$DOCKERD_LOG" </dev/null >&2 9>&- ||
    die "summoner bootstrap --only docker failed (the lines above say why)"
  command -v docker >/dev/null || die "no docker client on PATH"
  # dockerd's own pid file is the truth; docker_stop reads ours first.
  local pid
  if pid=$(pid_of /var/run/docker.pid dockerd); then echo "$pid" >"$DOCKERD_PID"; fi
}

docker_stop() {
  local pid
  if pid=$(pid_of "$DOCKERD_PID" dockerd) || pid=$(pid_of /var/run/docker.pid dockerd); then
    # dockerd stops the running containers first (up to 15 s), then its containerd.
    terminate "$pid" dockerd "$DOCKER_STOP_TIMEOUT"
  fi
  rm -f "$DOCKERD_PID"
  # A containerd left by a dockerd that was killed.
  if pid=$(pid_of /var/run/docker/containerd/containerd.pid containerd); then
    terminate "$pid" containerd 20
  fi
}

need_docker() { docker_up || die "docker is not running; use: $0 start"; }

# --- registry --------------------------------------------------------------

registry_ping() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$REGISTRY_ADDR/v2/" 2>/dev/null)" = 200 ]
}

need_go() {
  if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
    export PATH=/usr/local/go/bin:$PATH
  fi
  command -v go >/dev/null || die "go is not on PATH"
}

registry_build() {
  [ -x "$REGISTRY_BIN" ] && return 0
  need_go
  log "building registry $REGISTRY_VERSION into $(dirname "$REGISTRY_BIN")"
  local t0=$SECONDS
  mkdir -p "$CACHE" "$(dirname "$REGISTRY_BIN")" "$BUILD_LOGS"
  # Outside any module and ignoring the caller's GOFLAGS.
  (cd "$CACHE" && GOFLAGS='' GOWORK=off GOBIN="$(dirname "$REGISTRY_BIN")" \
    go install "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION") \
    >"$BUILD_LOGS/registry.log" 2>&1 || {
    tail -n 30 "$BUILD_LOGS/registry.log" >&2
    die "building the registry failed"
  }
  log "registry built in $((SECONDS - t0))s"
}

registry_config() {
  local tmp=$REGISTRY_CONF.tmp
  mkdir -p "$REGISTRY_DIR"
  cat >"$tmp" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $REGISTRY_ADDR
  secret: summoner-ci-not-a-secret
health:
  storagedriver:
    enabled: false
EOF
  if cmp -s "$tmp" "$REGISTRY_CONF"; then rm -f "$tmp"; else mv "$tmp" "$REGISTRY_CONF"; fi
}

registry_start() {
  command -v curl >/dev/null || apt_install curl
  registry_build
  registry_config
  local pid
  if registry_ping; then
    if pid=$(pid_of "$REGISTRY_PID" registry); then
      log "registry already running (pid $pid)"
    else
      log "a registry already answers on $REGISTRY_ADDR (not started by this script): using it"
    fi
    return 0
  fi
  if pid=$(pid_of "$REGISTRY_PID" registry); then
    log "registry (pid $pid) does not answer: restarting it"
    terminate "$pid" registry 10
  fi
  log "starting registry on $REGISTRY_ADDR (log: $REGISTRY_LOG)"
  # No OpenTelemetry exporter: it would try localhost:4318 for every request.
  OTEL_TRACES_EXPORTER=none setsid "$REGISTRY_BIN" serve "$REGISTRY_CONF" \
    </dev/null >>"$REGISTRY_LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$REGISTRY_PID"
  local deadline=$((SECONDS + 30))
  until registry_ping; do
    if ! alive "$pid"; then
      tail -n 20 "$REGISTRY_LOG" >&2 || true
      die "registry exited during startup (port $REGISTRY_ADDR taken?)"
    fi
    [ $SECONDS -lt $deadline ] || die "registry did not answer http://$REGISTRY_ADDR/v2/ within 30s"
    sleep 0.2
  done
  log "registry up (pid $pid)"
}

registry_stop() {
  local pid
  if pid=$(pid_of "$REGISTRY_PID" registry); then
    terminate "$pid" registry 10
  fi
  rm -f "$REGISTRY_PID"
}

# --- images ----------------------------------------------------------------

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

base_build() {
  if image_exists "$BASE_IMAGE"; then
    return 0
  fi
  local t0=$SECONDS
  if [ ! -s "$BASE_TAR" ]; then
    command -v debootstrap >/dev/null || apt_install debootstrap
    local dir=$CACHE/debootstrap.part
    rm -rf "$dir" "$BASE_TAR.part"
    mkdir -p "$CACHE"
    log "debootstrap --variant=minbase bookworm (log: $BUILD_LOGS/debootstrap.log)"
    mkdir -p "$BUILD_LOGS"
    debootstrap --variant=minbase bookworm "$dir" "$DEBIAN_MIRROR" >"$BUILD_LOGS/debootstrap.log" 2>&1 ||
      {
        tail -n 30 "$BUILD_LOGS/debootstrap.log" >&2
        die "debootstrap failed"
      }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    tar -C "$dir" -cf "$BASE_TAR.part" .
    mv "$BASE_TAR.part" "$BASE_TAR"
    rm -rf "$dir"
  else
    log "importing $BASE_IMAGE from $BASE_TAR"
  fi
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    "$BASE_TAR" "$BASE_IMAGE" >/dev/null
  log "$BASE_IMAGE built in $((SECONDS - t0))s"
}

# context_hash DIR ARGS...: a hash of the build context and the build args.
context_hash() {
  local dir=$1
  shift
  {
    (cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    printf 'arg %s\n' "$@"
  } | sha256sum | cut -c1-16
}

# --- Go programs for the mongo image ----------------------------------------

FERRETDB_VERSION=v1.24.2
# The proxy refuses mongo-tools' version list but serves exact versions;
# the module has no usable tags, hence a pseudo-version.
MONGO_TOOLS_VERSION=v0.0.0-20250715155915-887641268977
GO_BIN_DIR=$CACHE/bin

# module_copy MODULE@VERSION DEST: a writable copy of the module's source
# from the Go module proxy (the module cache is read-only).
module_copy() {
  local dir
  dir=$(cd "$CACHE" && GOFLAGS='' GOWORK=off GONOSUMDB=github.com/mongodb/mongo-tools \
    go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || die "downloading $1 from the Go module proxy failed"
  rm -rf "$2"
  cp -r "$dir" "$2"
  chmod -R u+w "$2"
}

# go_build OUT DIR PKG [GOFLAGS]: a static binary of PKG, built in DIR,
# installed as OUT only when complete (a killed build leaves nothing).
go_build() {
  local out=$1 dir=$2 pkg=$3 flags=${4:-}
  log "building $(basename "$out")"
  (cd "$dir" && CGO_ENABLED=0 GOFLAGS=$flags GOWORK=off go build -trimpath -ldflags=-s -o "$out.part" "$pkg") \
    >>"$BUILD_LOGS/mongo-bins.log" 2>&1 || {
    tail -n 30 "$BUILD_LOGS/mongo-bins.log" >&2
    die "building $(basename "$out") failed"
  }
  mv "$out.part" "$out"
}

# mongo_bins DIR: puts ferretdb, mongodump, mongorestore and mongojson in
# DIR, building each only once per version (mongojson: per source hash).
mongo_bins() {
  local dest=$1 t0=$SECONDS src
  need_go
  mkdir -p "$GO_BIN_DIR" "$BUILD_LOGS" "$dest"
  : >"$BUILD_LOGS/mongo-bins.log"
  local ferretdb=$GO_BIN_DIR/ferretdb-$FERRETDB_VERSION
  if [ ! -x "$ferretdb" ]; then
    src=$CACHE/ferretdb-src
    module_copy "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" "$src"
    # The build reads its version from this file and panics at start without it.
    echo "$FERRETDB_VERSION" >"$src/build/version/version.txt"
    echo docker >"$src/build/version/package.txt"
    go_build "$ferretdb" "$src" ./cmd/ferretdb
    rm -rf "$src"
  fi
  local tool
  for tool in mongodump mongorestore; do
    [ -x "$GO_BIN_DIR/$tool-$MONGO_TOOLS_VERSION" ] && continue
    src=$CACHE/mongo-tools-src
    if [ ! -d "$src" ]; then
      module_copy "github.com/mongodb/mongo-tools@$MONGO_TOOLS_VERSION" "$src"
      # Its vendor/ is incomplete in the module zip: resolve from go.mod.
      rm -rf "$src/vendor"
    fi
    go_build "$GO_BIN_DIR/$tool-$MONGO_TOOLS_VERSION" "$src" "./$tool/main" -mod=mod
  done
  rm -rf "$CACHE/mongo-tools-src"
  local mj_src=$IMAGES_DIR/mongo/mongojson mj
  mj=$GO_BIN_DIR/mongojson-$(context_hash "$mj_src")
  if [ ! -x "$mj" ]; then
    go_build "$mj" "$mj_src" . -mod=readonly
  fi
  cp "$ferretdb" "$dest/ferretdb"
  cp "$GO_BIN_DIR/mongodump-$MONGO_TOOLS_VERSION" "$dest/mongodump"
  cp "$GO_BIN_DIR/mongorestore-$MONGO_TOOLS_VERSION" "$dest/mongorestore"
  cp "$mj" "$dest/mongojson"
  log "mongo image programs ready in $((SECONDS - t0))s"
}

# build_context CONTEXT: the directory docker builds CONTEXT from; for
# mongo, a copy of it with the host-built programs added in bin/.
build_context() {
  case "$1" in
  mongo)
    local dir=$STATE/build-context/mongo
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$IMAGES_DIR/mongo/Dockerfile" "$IMAGES_DIR/mongo/docker-entrypoint.sh" "$IMAGES_DIR/mongo/mongosh" "$dir/"
    mongo_bins "$dir/bin"
    echo "$dir"
    ;;
  echo)
    local dir=$STATE/build-context/echo bin
    rm -rf "$dir"
    mkdir -p "$dir/bin" "$GO_BIN_DIR" "$BUILD_LOGS"
    cp "$IMAGES_DIR/echo/Dockerfile" "$dir/"
    need_go
    bin=$GO_BIN_DIR/summoner-echo-$ECHO_SRC
    [ -x "$bin" ] || go_build "$bin" "$SCRIPT_DIR/.." ./internal/echoserver/cmd/echo -mod=readonly
    cp "$bin" "$dir/bin/summoner-echo"
    echo "$dir"
    ;;
  mattermost)
    # The server binary and the folders it reads, from the build that
    # services.sh runs on the host (once per version, in $CACHE): Mattermost
    # is not built twice.
    local dir=$STATE/build-context/mattermost home f
    need_go
    home=$(bash "$SCRIPT_DIR/build-mattermost.sh") || die "building the Mattermost server failed"
    [ -x "$home/bin/mattermost" ] || die "build-mattermost.sh gave no binary in $home"
    rm -rf "$dir"
    mkdir -p "$dir/bin"
    for f in Dockerfile entrypoint.sh root.html; do cp "$IMAGES_DIR/mattermost/$f" "$dir/"; done
    # Hard links when the cache is on the same file system (86 MB binary).
    cp -l "$home/bin/mattermost" "$dir/bin/" 2>/dev/null || cp "$home/bin/mattermost" "$dir/bin/"
    cp -r "$home/i18n" "$home/templates" "$home/fonts" "$dir/"
    chmod 0755 "$dir/entrypoint.sh" "$dir/bin/mattermost"
    echo "$dir"
    ;;
  *) echo "$IMAGES_DIR/$1" ;;
  esac
}

# build_image NAME CONTEXT [BUILD-ARG...]: builds NAME unless an image with
# the same context hash is already there. Returns 0 if built, 1 if reused.
build_image() {
  local name=$1 ctx=$IMAGES_DIR/$2 cname=$2
  shift 2
  local hash have args=() a
  hash=$(context_hash "$ctx" "$@")
  have=$(docker image inspect -f '{{index .Config.Labels "summoner.test.hash"}}' "$name" 2>/dev/null || true)
  if [ "$have" = "$hash" ]; then
    return 1
  fi
  for a in "$@"; do args+=(--build-arg "$a"); done
  local t0=$SECONDS logf
  mkdir -p "$BUILD_LOGS"
  logf=$BUILD_LOGS/$(echo "$name" | tr '/:' '__').log
  ctx=$(build_context "$cname")
  log "building $name${have:+ (context changed)} (log: $logf)"
  DOCKER_BUILDKIT=0 docker build --label "summoner.test.hash=$hash" "${args[@]}" -t "$name" "$ctx" \
    </dev/null >"$logf" 2>&1 || {
    tail -n 40 "$logf" >&2
    die "building $name failed"
  }
  log "$name built in $((SECONDS - t0))s"
}

push_image() {
  local out
  out=$(docker push "$1" 2>&1) || {
    echo "$out" >&2
    die "pushing $1 failed"
  }
}

# The echo image's program comes from this module: its source is part of
# the image's hash.
ECHO_SRC=$(context_hash "$SCRIPT_DIR/../internal/echoserver")
# The Mattermost image's server: .ci/build-mattermost.sh builds this version
# once per machine, so the version names the binary.
MM_VERSION=$(sed -n 's/^MM_VERSION=//p' "$SCRIPT_DIR/build-mattermost.sh")
IMAGES=(
  # name                                     context   build args
  "$REGISTRY_ADDR/summoner/testapp:1.0|testapp|VERSION=1.0"
  "$REGISTRY_ADDR/summoner/testapp:1.1|testapp|VERSION=1.1"
  "$REGISTRY_ADDR/summoner/testapp:2.0-broken|testapp|VERSION=2.0 BROKEN=1"
  "$REGISTRY_ADDR/summoner/testapp:1.2|testapp|VERSION=1.2 BROKEN=1"
  "$REGISTRY_ADDR/summoner/testapp:1.3-migrates|testapp-migrates|"
  "$REGISTRY_ADDR/library/postgres:15.10|postgres|"
  "$REGISTRY_ADDR/library/mariadb:10.11.9|mariadb|"
  "$REGISTRY_ADDR/library/mysql:8.0.39|mariadb|"
  "$REGISTRY_ADDR/library/mongo:6.0.18|mongo|FERRETDB=$FERRETDB_VERSION MONGO_TOOLS=$MONGO_TOOLS_VERSION"
  "$REGISTRY_ADDR/summoner/echo:1.0|echo|SRC=$ECHO_SRC"
  # The catalog's statik minion runs nginx: the echo program stands in, on
  # port 80, so a real catalog minion runs behind the gateway in the tests.
  "$REGISTRY_ADDR/library/nginx:1.27.2-alpine|echo|SRC=$ECHO_SRC PORT=80 SERVICE=statik"
  # The catalog's mattermost minion: the v6.7.2 server built from the module
  # proxy under the official name and the pinned tag, and its PostgreSQL
  # (same context as 15.10: the legacy builder's cache makes it a second tag).
  "$REGISTRY_ADDR/library/postgres:15.8|postgres|"
  "$REGISTRY_ADDR/mattermost/mattermost-team-edition:9.11.2|mattermost|MM=$MM_VERSION"
)

images() {
  need_docker
  registry_ping || die "no registry on $REGISTRY_ADDR; use: $0 registry"
  local t0=$SECONDS entry name ctx args built=0
  base_build
  for entry in "${IMAGES[@]}"; do
    IFS='|' read -r name ctx args <<<"$entry"
    # shellcheck disable=SC2086
    if build_image "$name" "$ctx" $args; then built=$((built + 1)); fi
  done
  # Pushing is cheap when the registry has the layers (a HEAD per layer), and
  # refills a registry whose storage was wiped.
  local t1=$SECONDS
  for entry in "${IMAGES[@]}"; do
    push_image "${entry%%|*}"
  done
  log "images ready ($built built, ${#IMAGES[@]} pushed in $((SECONDS - t1))s) in $((SECONDS - t0))s"
}

write_env() {
  mkdir -p "$STATE"
  cat >"$ENV_FILE.tmp" <<EOF
export SUMMONER_IT_DOCKER=1
export SUMMONER_IT_REGISTRY=$REGISTRY_ADDR
EOF
  mv "$ENV_FILE.tmp" "$ENV_FILE"
  cat "$ENV_FILE"
}

# --- main ------------------------------------------------------------------

# compose_install builds docker compose v2 from the Go module proxy once
# (Debian has only the old Python v1) and installs it as a CLI plugin, so
# tests can check that `docker compose ls` sees Summoner's stacks.
COMPOSE_VERSION=v2.40.3
COMPOSE_BIN=$CACHE/bin/docker-compose-$COMPOSE_VERSION
compose_install() {
  if [ ! -x "$COMPOSE_BIN" ]; then
    log "building docker compose $COMPOSE_VERSION (once)"
    local dir src
    dir=$(cd "$CACHE" && GOFLAGS='' GOWORK=off go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
      sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$dir" ] || die "docker compose module download failed"
    src=$CACHE/compose-src
    rm -rf "$src"
    cp -r "$dir" "$src"
    chmod -R u+w "$src"
    (cd "$src" && GOFLAGS=-mod=mod GOWORK=off go build -o "$COMPOSE_BIN.part" ./cmd) >&2 || die "building docker compose failed"
    mv "$COMPOSE_BIN.part" "$COMPOSE_BIN"
    rm -rf "$src"
  fi
  mkdir -p /usr/local/lib/docker/cli-plugins
  install -m 0755 "$COMPOSE_BIN" /usr/local/lib/docker/cli-plugins/docker-compose
}

cmd=${1:-}
case "$cmd" in
start)
  lock
  docker_start
  ;;
registry)
  lock
  registry_start
  ;;
images)
  lock
  images
  ;;
compose)
  lock
  compose_install
  ;;
mongo-bins)
  lock
  mongo_bins "$STATE/build-context/mongo-bins"
  ;;
env)
  write_env
  ;;
all)
  t0=$SECONDS
  lock
  docker_start
  registry_start
  images
  compose_install
  write_env
  log "ready in $((SECONDS - t0))s; env file: $ENV_FILE"
  ;;
stop)
  lock
  registry_stop
  docker_stop
  ;;
*)
  echo "usage: $0 start|registry|images|compose|env|all|stop" >&2
  exit 2
  ;;
esac
