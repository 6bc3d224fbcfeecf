#!/usr/bin/env bash
# Times one build under several values of a tuning variable: `lmk bench` per value, in
# interleaved rounds (so drift shows), then one table of every case's time per value and its
# ratio to the first value.
#   usage: scripts/env-sweep.sh VAR "v1 v2 ..." [lmk bench args...]
#   env:   LMK=build/lmk (or .ship/bin/lmk with LD_LIBRARY_PATH=.ship/bin)  ROUNDS=2  WORK=/tmp/sweep
# e.g.  scripts/env-sweep.sh LMK_QMVP_L2_PREFETCH_KB "0 16 32 64" --op quantized_matmul_ggml_packed --case 1x
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
python3 - "$WORK" "$ROUNDS" "$VAR" $VALUES <<'PY'
import json, os, sys
work, rounds, var, values = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
runs, device = {}, ""
for v in values:
    for r in range(1, rounds + 1):
        path = os.path.join(work, f"{v}.{r}.json")
        if not os.path.exists(path):
            continue
        d = json.load(open(path))
        device = f"{d['device']}, copy {d['copy_gbps']:.0f} GB/s"
        for x in d["results"]:
            key = (x["op"], x["case"])
            runs.setdefault(key, {}).setdefault(v, []).append((x["us"], x.get("b2b_us", 0)))
print(f"{var} sweep on {device}: µs per round (cold, b2b where taken) / best cold ratio to {var}={values[0]}")
print(f"{'op':32} {'case':36} " + " ".join(f"{var[-12:] + '=' + v:>26}" for v in values))
for (op, case), per in runs.items():
    base = min(t for t, _ in per.get(values[0], [(0, 0)])) or None
    cols = []
    for v in values:
        t = per.get(v)
        if not t:
            cols.append(f"{'-':>26}")
            continue
        cell = "/".join(f"{c:.1f}" + (f"({b:.1f})" if b else "") for c, b in t)
        ratio = f" {min(c for c, _ in t) / base:4.2f}x" if base else ""
        cols.append(f"{cell + ratio:>26}")
    print(f"{op[:32]:32} {case[:36]:36} " + " ".join(cols))
PY
