#!/usr/bin/env bash
# Same-machine A/B of source trees: builds each (in parallel, the cores split between them), runs
# an optional `lmk check` on each, then `lmk bench` on each in turn (twice, interleaved, so drift
# shows), and prints one table: the time of every case per tree and its ratio to the first tree.
#   usage: scripts/ab-bench.sh NAME=TREE.tar [NAME=TREE.tar ...]
#          a NAME=BUILD.tgz from `scripts/ship-bin.sh BUILD NAME` is a prebuilt lmk: not built here
#   env:   BENCH_ARGS="--op quantized_matmul_ggml_packed --case q4_0"  CHECK_ARGS="" (e.g. --op X)
#          ROUNDS=2  WORK=/tmp/ab  JOBS=$(nproc)  CMAKE_FLAGS="" (e.g. -DLMK_CUDA=OFF)
# Trees come from `git archive REV -o .ship/NAME.tar` here (the device copy has no .git).
set -uo pipefail
[ $# -ge 1 ] || { sed -n 2,8p "$0"; exit 2; }
WORK=${WORK:-/tmp/ab}
ROUNDS=${ROUNDS:-2}
JOBS=${JOBS:-$(nproc)}
BENCH_ARGS=${BENCH_ARGS:-}
CHECK_ARGS=${CHECK_ARGS:-}
CMAKE_FLAGS=${CMAKE_FLAGS:-}
names=()
rm -rf "$WORK" && mkdir -p "$WORK"
for spec in "$@"; do
  name=${spec%%=*} tar=${spec#*=}
  [ -f "$tar" ] || { echo "ab-bench: no tree $tar" >&2; exit 2; }
  names+=("$name")
  if [[ $tar == *.tgz ]]; then mkdir -p "$WORK/$name/b" && tar -xzf "$tar" -C "$WORK/$name/b"
  else mkdir -p "$WORK/$name" && tar -xf "$tar" -C "$WORK/$name"; fi
done
per=$(( JOBS / ${#names[@]} )); [ "$per" -ge 1 ] || per=1
for n in "${names[@]}"; do
  [ -x "$WORK/$n/b/lmk" ] && continue  # prebuilt
  ( cmake -S "$WORK/$n" -B "$WORK/$n/b" -G Ninja -DCMAKE_BUILD_TYPE=Release $CMAKE_FLAGS >"$WORK/$n.configure.log" 2>&1 &&
    cmake --build "$WORK/$n/b" -j "$per" --target lmk >"$WORK/$n.build.log" 2>&1 ||
    echo "ab-bench: $n failed to build (see $WORK/$n.build.log)" >&2 ) &
done
wait
for n in "${names[@]}"; do
  [ -x "$WORK/$n/b/lmk" ] || { grep -E "error" "$WORK/$n.build.log" | head -20; exit 1; }
  grep -sE "spill" "$WORK/$n.build.log" | grep -v " 0 bytes spill" | sed "s/^/$n: /" | head -5
done
if [ -n "$CHECK_ARGS" ]; then
  for n in "${names[@]}"; do
    # shellcheck disable=SC2086
    echo "$n: $(LD_LIBRARY_PATH="$WORK/$n/b" "$WORK/$n/b/lmk" check $CHECK_ARGS 2>&1 | grep -E "FAIL|passed|lmk:" | tail -5)"
  done
fi
for r in $(seq "$ROUNDS"); do
  for n in "${names[@]}"; do
    # shellcheck disable=SC2086
    LD_LIBRARY_PATH="$WORK/$n/b" "$WORK/$n/b/lmk" bench $BENCH_ARGS --json "$WORK/$n.$r.json" >/dev/null 2>"$WORK/$n.$r.err" ||
      { echo "ab-bench: bench failed for $n"; cat "$WORK/$n.$r.err"; }
  done
done
specs=()
for n in "${names[@]}"; do specs+=("$n=$(seq -s, -f "$WORK/$n.%g.json" "$ROUNDS")"); done
python3 "$(dirname "$0")/bench-table.py" "A/B" "${specs[@]}"
