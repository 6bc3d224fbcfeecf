#!/usr/bin/env bash
# Times one build under several values of a tuning variable: `lmk bench` per value, in
# interleaved rounds (so drift shows), then one table of every case's time per value and its
# ratio to the first value.
#   usage: scripts/env-sweep.sh VAR "v1 v2 ..." [lmk bench args...]
#   env:   LMK=build/lmk (or .ship/bin/lmk with LD_LIBRARY_PATH=.ship/bin)  ROUNDS=2  WORK=/tmp/sweep
#   (the table: scripts/bench-table.py)
# e.g.  scripts/env-sweep.sh LMK_MM_DIRECT_ROWS "32 64" --op quantized_matmul_id_ggml_packed --case T8
set -uo pipefail
[ $# -ge 2 ] || { sed -n 2,8p "$0"; exit 2; }
VAR=$1 VALUES=$2; shift 2
LMK=${LMK:-build/lmk}
ROUNDS=${ROUNDS:-2}
WORK=${WORK:-/tmp/sweep}
rm -rf "$WORK" && mkdir -p "$WORK"
for r in $(seq "$ROUNDS"); do
  for v in $VALUES; do
    env "$VAR=$v" "$LMK" bench "$@" --json "$WORK/$v.$r.json" >/dev/null 2>"$WORK/$v.$r.err" ||
      { echo "env-sweep: bench failed for $VAR=$v"; cat "$WORK/$v.$r.err"; }
  done
done
specs=()
for v in $VALUES; do specs+=("$v=$(seq -s, -f "$WORK/$v.%g.json" "$ROUNDS")"); done
python3 "$(dirname "$0")/bench-table.py" "$VAR sweep" "${specs[@]}"
