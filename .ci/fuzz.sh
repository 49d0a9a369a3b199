#!/usr/bin/env bash
# Runs each fuzz target of the notifications package briefly, one after the
# other (go test takes one -fuzz target per run): every payload parser, the
# signature checks and the recipe filter. FUZZTIME per target (default 20000 inputs)
# keeps the whole step under about two minutes on a 2-core machine. A
# crasher fails the step; go test writes it under
# notifications/testdata/fuzz/<target>/, where it then runs as a regression
# seed with the normal tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# A count, not a duration: with a duration, go test fails now and then with
# "context deadline exceeded" when the deadline falls while a worker is
# busy on a loaded machine, which is no crash of ours (a red CI for
# nothing). 20000 inputs take 2 to 10 s per target here.
fuzztime=${FUZZTIME:-20000x}
targets=(
  FuzzParseGitLab FuzzParseGitHub FuzzParseGitea FuzzParseNextcloud
  FuzzParseGeneric FuzzParseSlack FuzzVerify FuzzRecipeFilter
)
# A target that was renamed away must fail here, not be skipped in silence.
listed=$(go test -list '^Fuzz' ./notifications/)
for t in "${targets[@]}"; do
  if ! grep -qx "$t" <<<"$listed"; then
    echo "fuzz.sh: no fuzz target $t in ./notifications/" >&2
    exit 1
  fi
done
for t in "${targets[@]}"; do
  echo "fuzz: $t for $fuzztime"
  go test -run='^$' -fuzz="^${t}\$" -fuzztime="$fuzztime" -parallel=2 ./notifications/
done
