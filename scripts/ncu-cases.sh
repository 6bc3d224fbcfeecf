#!/usr/bin/env bash
# Profiles bench cases with Nsight Compute on the GPU machine: for each "OP|CASE" argument, one
# `lmk bench --op OP --case CASE` run in which the first few launches are skipped and the next
# LAUNCHES are profiled with the sections that say what bounds a kernel (speed of light, memory
# workload, warp stalls, occupancy, launch), then a short digest per kernel: duration, DRAM and
# SM throughput, achieved occupancy, registers, the top warp-stall reasons.
#   usage: scripts/ncu-cases.sh "quantized_matmul_ggml_packed|q4_0 1x4096x14336" "softmax|f32 16x262144"
#   env:   LMK=build/lmk (or .ship/bin/lmk with LD_LIBRARY_PATH)  SKIP=12  LAUNCHES=3  OUT=$PWD/out
#          KERNEL=regex (profile only kernels whose name matches; SKIP / LAUNCHES count those)
#          (full reports: $OUT/ncu-N.ncu-rep, open with ncu-ui; digests: $OUT/ncu-digest.txt)
set -uo pipefail
[ $# -ge 1 ] || { sed -n 2,9p "$0"; exit 2; }
LMK=${LMK:-build/lmk}
SKIP=${SKIP:-12}
LAUNCHES=${LAUNCHES:-3}
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
n=0
for spec in "$@"; do
  op=${spec%%|*} case=${spec#*|}
  n=$((n + 1))
  rep="$OUT/ncu-$n"
  echo "== $op | $case" | tee -a "$OUT/ncu-digest.txt"
  timeout 240 ncu --launch-skip "$SKIP" --launch-count "$LAUNCHES" ${KERNEL:+-k "regex:$KERNEL"} \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section SchedulerStats --section MemoryWorkloadAnalysis --section WarpStateStats \
    --section Occupancy --section LaunchStats -o "$rep" -f \
    "$LMK" bench --op "$op" --case "$case" >/dev/null 2>"$rep.err" ||
    { echo "ncu failed:"; tail -5 "$rep.err"; continue; }
  ncu --import "$rep.ncu-rep" --csv --page details >"$rep-details.csv" 2>/dev/null
  python3 -c '
import csv, sys, collections
rows = list(csv.reader(sys.stdin))
if not rows: sys.exit()
h = rows[0]
ki, ni, mi, ui, vi = (h.index(c) for c in ("ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value"))
want = ("Duration", "Issue Slots Busy", "Issued Warp Per Scheduler", "Eligible Warps Per Scheduler", "DRAM Throughput", "Compute (SM) Throughput", "Achieved Occupancy", "Registers Per Thread",
        "Memory Throughput", "L2 Hit Rate", "Grid Size", "Block Size")
per = collections.OrderedDict()
for r in rows[1:]:
    k = (r[ki], r[ni].split("(")[0][:70])
    per.setdefault(k, {})[r[mi]] = (r[vi], r[ui])
for (kid, name), m in per.items():
    line = ", ".join(f"{w} {m[w][0]} {m[w][1]}".strip() for w in want if w in m)
    print(f"  [{kid}] {name}: {line}")
' <"$rep-details.csv" | tee -a "$OUT/ncu-digest.txt"
  # Warp stall reasons are raw metrics of WarpStateStats
  # (smsp__average_warps_issue_stalled_<reason>_per_issue_active.ratio): the top five.
  ncu --import "$rep.ncu-rep" --csv --page raw 2>/dev/null | python3 -c '
import csv, sys
rows = list(csv.reader(sys.stdin))
if len(rows) < 3: sys.exit()
h = rows[0]
for r in rows[2:]:
    vals = []
    for i, c in enumerate(h):
        pre, post = "smsp__average_warps_issue_stalled_", "_per_issue_active.ratio"
        if c.startswith(pre) and c.endswith(post) and "not_issued" not in c:
            try: vals.append((float(r[i].replace(",", "")), c[len(pre):-len(post)]))
            except ValueError: pass
    tot = sum(v for v, _ in vals) or 1
    top = sorted(vals, reverse=True)[:5]
    print("    stalls: " + ", ".join(f"{k} {100 * v / tot:.0f}%" for v, k in top))
' | tee -a "$OUT/ncu-digest.txt"
done
