#!/usr/bin/env bash
# Runs golangci-lint (configuration: .golangci.yml) on the whole module,
# test files included; any finding fails the step. The linter is built from
# the Go module proxy at a pinned version, once, into $SUMMONER_CI_CACHE/bin
# (default /var/cache/summoner-ci/bin) under a versioned name, so a second
# run reuses it and a version bump here builds the new one (about 1.5 min on
# a 2-core machine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GOLANGCI_LINT_VERSION=v2.15.0
CACHE=${SUMMONER_CI_CACHE:-/var/cache/summoner-ci}
LINT_BIN=$CACHE/bin/golangci-lint-$GOLANGCI_LINT_VERSION

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH=/usr/local/go/bin:$PATH
fi

if [ ! -x "$LINT_BIN" ]; then
  echo "lint.sh: building golangci-lint $GOLANGCI_LINT_VERSION into $(dirname "$LINT_BIN")"
  t0=$SECONDS
  # go install cannot name its output: build into a scratch GOBIN and move
  # the binary into place only when complete (a killed build leaves nothing).
  part=$CACHE/bin/golangci-lint.part
  rm -rf "$part"
  mkdir -p "$part"
  # Outside any module and ignoring the caller's GOFLAGS.
  (cd "$CACHE" && GOFLAGS='' GOWORK=off GOBIN="$part" \
    go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION")
  mv "$part/golangci-lint" "$LINT_BIN"
  rmdir "$part"
  echo "lint.sh: golangci-lint built in $((SECONDS - t0))s"
fi

t0=$SECONDS
"$LINT_BIN" run ./...
echo "lint.sh: golangci-lint clean in $((SECONDS - t0))s"
