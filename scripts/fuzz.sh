#!/usr/bin/env bash
# Builds the libFuzzer targets of the file readers (fuzz/CMakeLists.txt: clang++,
# -fsanitize=fuzzer,address,undefined) into build-fuzz and runs each for FUZZ_SECONDS (default
# 60) from a generated seed corpus. Needs clang++ and libFuzzer (Debian: libclang-rt-14-dev).
# Exits non-zero on the first crash; the reproducer is left in build-fuzz/artifacts/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
SECS=${FUZZ_SECONDS:-60}
CXX_BIN=${FUZZ_CXX:-clang++}
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)

cmake -S "$ROOT/fuzz" -B "$BUILD" "${GEN[@]}" -DCMAKE_CXX_COMPILER="$CXX_BIN" >/dev/null
cmake --build "$BUILD" -j "${FUZZ_JOBS:-2}"

"$BUILD/make_corpus" "$BUILD/seeds"
mkdir -p "$BUILD/artifacts"
for t in gguf safetensors; do
  corpus="$BUILD/corpus/$t"
  mkdir -p "$corpus"
  cp -n "$BUILD/seeds/$t"/* "$corpus/" 2>/dev/null || true
  echo "== fuzzing $t for ${SECS}s (corpus $corpus)"
  "$BUILD/${t}_fuzz" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -dict="$ROOT/fuzz/$t.dict" -artifact_prefix="$BUILD/artifacts/${t}-" -print_final_stats=1 "$corpus"
done
echo "fuzz: no crashes"
