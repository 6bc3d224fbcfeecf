#!/usr/bin/env bash
# llama.cpp's CUDA backend as a same-card peer: its test-backend-ops perf mode at the issue-5 shapes
# (MUL_MAT 4096 x 14336 at 1..512 tokens, MUL_MAT_ID at the Qwen3-30B-A3B shape), so ratios to it
# compare two libraries on one GPU instead of against peers.md's figures from another card.
#   scripts/peer-llama.sh fetch   (this machine: the llama-cpp-python sdist from PyPI, which vendors
#                                  llama.cpp, trimmed to what test-backend-ops needs: .peers/llama-src.tgz)
#   scripts/peer-llama.sh run     (the GPU machine, with .peers carried: configure + build for sm_90a,
#                                  about 5 minutes on 16 cores, then the perf runs; output in $OUT)
# Nothing of it enters the project: .peers/ is ignored, the build lives in /tmp.
set -euo pipefail
VERSION=${LLAMA_PY_VERSION:-0.3.36}
case "${1:-}" in
fetch)
  mkdir -p .peers && tmp=$(mktemp -d)
  pip download "llama-cpp-python==$VERSION" --no-deps --no-binary :all: -d "$tmp" >/dev/null
  tar xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
  src=$(echo "$tmp"/llama_cpp_python-*/vendor/llama.cpp)
  excl=(); for b in vulkan sycl opencl cann musa hip webgpu zdnn metal hexagon openvino; do excl+=(--exclude="ggml-$b"); done
  tar czf .peers/llama-src.tgz "${excl[@]}" -C "$src" ggml src include common tests cmake CMakeLists.txt vendor licenses
  rm -rf "$tmp"
  du -sh .peers/llama-src.tgz
  ;;
run)
  OUT=${OUT:-$PWD/out}
  mkdir -p "$OUT" /tmp/llama && tar xzf .peers/llama-src.tgz -C /tmp/llama
  cmake -S /tmp/llama -B /tmp/llama/b -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DGGML_CUDA_FA=OFF -DGGML_CUDA_NCCL=OFF -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=ON \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >/tmp/llama/configure.log 2>&1 ||
    { tail -20 /tmp/llama/configure.log; exit 1; }
  ninja -C /tmp/llama/b test-backend-ops >/tmp/llama/build.log 2>&1 || { tail -20 /tmp/llama/build.log; exit 1; }
  tbo=/tmp/llama/b/bin/test-backend-ops
  types=${LLAMA_TYPES:-bf16|q4_0|q8_0|q5_1|iq4_nl|q4_K|q6_K}
  $tbo perf -b CUDA0 -o MUL_MAT -p "type_a=($types),type_b=f32,m=4096,n=(1|2|4|8|512),k=14336," 2>&1 |
    grep -E "^  (MUL_MAT|Device)" | sed 's/\x1b\[[0-9;]*m//g' | tee "$OUT/llama-mul-mat.txt"
  $tbo perf -b CUDA0 -o MUL_MAT_ID -p 'type_a=(q4_0|q8_0|q4_K|q6_K),type_b=f32,n_mats=128,n_used=8,b=0,m=768,n=(1|8|32|512),k=2048,' 2>&1 |
    grep -E "^  MUL_MAT" | sed 's/\x1b\[[0-9;]*m//g' | tee "$OUT/llama-mul-mat-id.txt"
  ;;
*) sed -n 2,10p "$0"; exit 2 ;;
esac
