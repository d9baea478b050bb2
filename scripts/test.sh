#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs the whole suite, then the whole
# suite again built with AddressSanitizer + UBSan, then each libFuzzer target for a
# bounded time, then the format check. Exit code 0 only when everything passed.
#
#   FUZZ_SECONDS   seconds per fuzz target (default 30)
#   JOBS           parallel build jobs (default: nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
JOBS=${JOBS:-$(nproc)}

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
./scripts/deps.sh

step "browser test dependencies (npm ci: playwright-core, no browser download)"
(cd tests/browser && npm ci --no-audit --no-fund --silent)

step "build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"

passed=0
run_ctest() { # runs ctest in $1 and adds its passed count; fails when a test failed
  local log
  log=$(mktemp)
  (cd "$1" && ctest --output-on-failure) 2>&1 | tee "$log"
  passed=$((passed + $(grep -oP 'tests passed, 0 tests failed out of \K[0-9]+' "$log" || echo 0)))
  rm -f "$log"
}

step "tests"
run_ctest build

step "build with -fsanitize=address,undefined"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DGW_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j "$JOBS"

step "tests under AddressSanitizer + UBSan (leaks checked at exit)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
GW_TEST_TIMEOUT_MULT=3 run_ctest build-asan

step "fuzzing (libFuzzer, ${FUZZ_SECONDS}s per target)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DGW_FUZZ=ON \
  -DGW_SANITIZE=address,undefined >/dev/null
FUZZ_TARGETS=(client_frame json_payload glob_algebra jwt headers)
cmake --build build-fuzz -j "$JOBS" --target "${FUZZ_TARGETS[@]/#/fuzz_}"
mkdir -p build-fuzz/artifacts
for t in "${FUZZ_TARGETS[@]}"; do
  # New inputs are kept in build-fuzz/corpus/<target> (reused by the next run on this
  # machine; scripts/fuzz-merge.sh folds them into tests/fuzz/corpus/). A failing input
  # is kept in build-fuzz/artifacts/ (add it to tests/fuzz/corpus/ once fixed). An input
  # that takes over 10 s is a finding too (libFuzzer's own default is 20 minutes).
  keep="$ROOT/build-fuzz/corpus/$t"
  mkdir -p "$keep"
  log=$(mktemp)
  if ! (cd "$keep" && "$ROOT/build-fuzz/bin/fuzz_$t" -max_total_time="$FUZZ_SECONDS" \
        -timeout=10 -max_len=8192 -print_final_stats=1 \
        -artifact_prefix="$ROOT/build-fuzz/artifacts/$t-" \
        "$keep" "$ROOT/tests/fuzz/corpus/$t" >"$log" 2>&1); then
    tail -n 80 "$log"
    echo "fuzz_$t failed: the input is in build-fuzz/artifacts/"
    exit 1
  fi
  echo "fuzz_$t: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log"), $(ls "$keep" | wc -l) inputs kept"
  rm -f "$log"
done

step "format (clang-format)"
git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

echo
echo "tests: $passed passed, 0 failed"
