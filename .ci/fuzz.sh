#!/usr/bin/env bash
# Runs each fuzz target briefly, one after the other (go test takes one
# -fuzz target per run): what strangers and typos reach. The webhooks'
# payload parsers, signature checks and recipe filter; the chat command
# line (is a post for the bot, split, arguments, the router end to end);
# the configuration's strict load; and custom minions' compose rendering.
# FUZZTIME per target (default 20000 inputs) keeps the whole step under
# about three minutes on a 2-core machine, once the instrumented test
# binaries are built. A crasher fails the step; go test writes it under
# <package>/testdata/fuzz/<target>/, where it then runs as a regression
# seed with the normal tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A count, not a duration: with a duration, go test fails now and then with
# "context deadline exceeded" when the deadline falls while a worker is
# busy on a loaded machine, which is no crash of ours (a red CI for
# nothing). 20000 inputs take 2 to 25 s per target here.
fuzztime=${FUZZTIME:-20000x}
# A new input that widens coverage is minimised first, for up to 60 s by
# default: with large seeds (a whole config or compose file) that stalls a
# 20000-input run for a minute at a time. 5 s keeps the saved inputs
# small enough to read.
minimize=${FUZZMINIMIZETIME:-5s}
# package: its targets.
declare -A targets=(
  [./notifications/]="FuzzParseGitLab FuzzParseGitHub FuzzParseGitea FuzzParseNextcloud
    FuzzParseGeneric FuzzParseSlack FuzzVerify FuzzRecipeFilter"
  [./chat/mattermost/]="FuzzAddressed"
  [./commands/]="FuzzSplit FuzzArgs FuzzRouter"
  [./config/]="FuzzLoad"
  [./minions/]="FuzzCustomMinion FuzzRenderCompose"
)
packages=(./notifications/ ./chat/mattermost/ ./commands/ ./config/ ./minions/)

# A target that was renamed away, or a package left out of the order
# above, must fail here, not be skipped in silence.
for pkg in "${!targets[@]}"; do
  if [[ " ${packages[*]} " != *" $pkg "* ]]; then
    echo "fuzz.sh: $pkg has targets but is not in packages" >&2
    exit 1
  fi
done
for pkg in "${packages[@]}"; do
  listed=$(go test -list '^Fuzz' "$pkg")
  for t in ${targets[$pkg]}; do
    if ! grep -qx "$t" <<<"$listed"; then
      echo "fuzz.sh: no fuzz target $t in $pkg" >&2
      exit 1
    fi
  done
done
for pkg in "${packages[@]}"; do
  for t in ${targets[$pkg]}; do
    echo "fuzz: $pkg $t for $fuzztime"
    start=$SECONDS
    go test -run='^$' -fuzz="^${t}\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimize" -parallel=2 "$pkg"
    echo "fuzz: $t took $((SECONDS - start)) s"
  done
done
