#!/usr/bin/env bash
# One round on the GPU machine: configure (Ninja, all cores), build, ctest (cpu + gpu labels),
# compute-sanitizer memcheck + racecheck over the GPU tests, `lmk check`, `lmk bench --json`,
# optionally the PyTorch peers; logs and JSON under $OUT, a short summary table printed last.
#   env: BUILD=build-gpu  BENCH_ARGS=""  SANITIZE=1  PEERS=0  TESTS=1  SAN_FILTER='*_cuda_*'
#        SAN_TIMEOUT=240 (seconds per sanitizer step: the device call itself stops at 600)
#        PREBUILT=.ship/bin (binaries from scripts/ship-bin.sh: no configure or build; the gtest
#        binaries run one by one instead of ctest; falls back to building if they do not start)
# $OUT/summary.txt gets a line as each step ends, so a run stopped by the call limit still says
# how far it got.
set -uo pipefail
OUT=${OUT:-$PWD/out}
LOGS=$(mktemp -d)   # all logs; packed into $OUT/logs.tgz at the end (few files come back)
BUILD=${BUILD:-build-gpu}
BENCH_ARGS=${BENCH_ARGS:-}
SANITIZE=${SANITIZE:-1}
PEERS=${PEERS:-0}
TESTS=${TESTS:-1}
SAN_FILTER=${SAN_FILTER:-*_cuda_*}
SAN_TIMEOUT=${SAN_TIMEOUT:-240}
mkdir -p "$OUT"
trap 'tar czf "$OUT/logs.tgz" -C "$LOGS" . 2>/dev/null' EXIT
declare -a summary
step() {  # step NAME LOG COMMAND...
  local name=$1 log=$2; shift 2
  local t0=$SECONDS
  "$@" >"$LOGS/$log" 2>&1
  local rc=$?
  summary+=("$(printf '%-22s %-6s %5ss  %s' "$name" "$([ $rc = 0 ] && echo ok || echo FAIL:$rc)" $((SECONDS - t0)) "$log")")
  echo "${summary[-1]}" >>"$OUT/summary.txt"
  return $rc
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv >"$LOGS/gpu.txt" 2>&1
cat "$LOGS/gpu.txt"
PREBUILT=${PREBUILT:-}
if [ -n "$PREBUILT" ]; then
  export LD_LIBRARY_PATH="$(cd "$PREBUILT" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if step prebuilt prebuilt.log "$PREBUILT/lmk" --version; then BUILD=$PREBUILT; else PREBUILT=""; cat "$LOGS/prebuilt.log"; fi
fi
if [ -z "$PREBUILT" ]; then
  step configure configure.log cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release || { tail -30 "$LOGS/configure.log"; exit 1; }
  step build build.log cmake --build "$BUILD" -j "$(nproc)" || { grep -E "error|FAILED" -A5 "$LOGS/build.log" | head -80; exit 1; }
  grep -E "spill|stack frame" "$LOGS/build.log" | grep -v " 0 bytes spill" | sort | uniq | head -20 >"$LOGS/spills.txt"
fi

if [ "$TESTS" = 1 ]; then
  if [ -n "$PREBUILT" ]; then
    step "gtest (prebuilt)" ctest.log bash -c 'rc=0; for t in "$0"/tests/test_*; do "$t" --gtest_brief=1 || rc=1; done; exit $rc' "$BUILD"
  else
    step ctest ctest.log bash -c "cd $BUILD && ctest --output-on-failure -j 4 --timeout 600"
  fi
  grep -E "tests passed|tests failed|Failed|FAILED|\*\*\*" "$LOGS/ctest.log" | head -30
  if [ "$SANITIZE" = 1 ] && command -v compute-sanitizer >/dev/null; then
    step memcheck memcheck.log timeout "$SAN_TIMEOUT" compute-sanitizer --tool memcheck --error-exitcode 9 \
      "$BUILD/tests/test_checks" --gtest_filter="${SAN_FILTER}" --gtest_brief=1
    step racecheck racecheck.log timeout "$SAN_TIMEOUT" compute-sanitizer --tool racecheck --error-exitcode 9 \
      "$BUILD/tests/test_checks" --gtest_filter="${SAN_FILTER}" --gtest_brief=1
    for t in "$BUILD"/tests/test_*; do
      [ -x "$t" ] && [ "$(basename "$t")" != test_checks ] || continue
      "$t" --gtest_list_tests --gtest_filter='*Gpu*' | grep -q '^ ' || continue  # no GPU tests
      step "memcheck $(basename "$t")" "memcheck_$(basename "$t").log" compute-sanitizer --tool memcheck \
        --error-exitcode 9 "$t" --gtest_filter='*Gpu*' --gtest_brief=1
    done
    for f in "$LOGS"/memcheck*.log "$LOGS"/racecheck.log; do echo "$(basename "$f"): $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$f" | tail -1)"; done
  fi
  step "lmk check" check.log "$BUILD/lmk" check --all
  grep -E "FAIL|passed" "$LOGS/check.log" | tail -20
fi

step "lmk bench" bench.log "$BUILD/lmk" bench --json "$OUT/bench.json" --tsv "$OUT/perf-latest.tsv" $BENCH_ARGS
cat "$LOGS/bench.log"
if [ "$PEERS" = 1 ] && [ -f .peers/core_ops_peers.py ]; then
  step "torch peers" peers.log env PYTHONUNBUFFERED=1 OUT="$OUT" python3 .peers/core_ops_peers.py
  cat "$LOGS/peers.log"
fi
echo
echo "==== summary ($(head -2 "$LOGS/gpu.txt" | tail -1)) ===="
printf '%s\n' "${summary[@]}"
