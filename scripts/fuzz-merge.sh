#!/usr/bin/env bash
# Folds the inputs the fuzzers found (build-fuzz/corpus/<target>, kept by
# scripts/test.sh) into the committed seeds (tests/fuzz/corpus/<target>), keeping only
# those that add coverage (libFuzzer -merge=1). Review and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
for d in build-fuzz/corpus/*/; do
  t=$(basename "$d")
  [ -x "build-fuzz/bin/fuzz_$t" ] || continue
  before=$(ls "tests/fuzz/corpus/$t" | wc -l)
  "build-fuzz/bin/fuzz_$t" -merge=1 -max_len=8192 "tests/fuzz/corpus/$t" "$d" >/dev/null 2>&1
  echo "$t: $before -> $(ls "tests/fuzz/corpus/$t" | wc -l) seeds"
done
