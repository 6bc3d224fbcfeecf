// Peer figures measured on the lent H100 80GB HBM3 (../shared/peers.md, 2026): the times to
// beat. Keys are "<op>/<case>" as the benchmarks name them. On an H200 these H100 times do not
// apply; `lmk bench` then prints the ratio but marks the card.
#pragma once
#include <string_view>

namespace lmk::bench {

struct Peer {
  std::string_view key;
  double us;
  std::string_view source;
};

inline constexpr Peer kPeers[] = {
    {"rms_norm/bf16 16384x4096", 94.8, "torch.compile (peers.md; eager F.rms_norm 125-129 us)"},
    {"rms_norm/f32 16384x4096", 182, "torch.compile (peers.md)"},
    {"add/bf16 8192x14336", 236, "torch.compile / eager (peers.md)"},
    {"cast/bf16->f32 8192x14336", 241, "torch.compile (peers.md)"},
    {"l2_norm/bf16 16384x4096", 94.7, "torch.compile (peers.md)"},
    {"fused_residual_norm/bf16 16384x4096", 136, "torch.compile, sum not stored (peers.md)"},
    {"softmax/bf16 16384x4096", 160, "torch.compile (peers.md)"},
    {"softmax/f32 16384x4096", 182, "torch.compile (peers.md)"},
    {"softmax/f32 16x262144", 91.9, "llama.cpp CUDA (peers.md)"},
    {"softmax/bf16 16x262144", 51.9, "torch.compile (peers.md)"},
    {"softmax/f32 1x262144", 7.6, "llama.cpp CUDA (peers.md)"},
    {"softmax/bf16 1x151936", 42.7, "PyTorch eager (peers.md)"},
    {"softmax/f32 1x151936", 50.4, "PyTorch eager (peers.md)"},
    {"silu_mul/bf16 8192x14336", 236, "torch.compile (peers.md)"},
    {"sigmoid_mul/bf16 8192x14336", 236, "torch.compile (peers.md)"},
    {"gelu/bf16 8192x14336", 160, "torch.compile softcap-class unary (peers.md)"},
    {"softcap/bf16 8192x14336", 160, "torch.compile (peers.md)"},
    {"transpose/bf16 8192x14336", 180, "torch.compile (peers.md)"},
    {"cumsum/f32 4x2000000", 76.4, "torch.compile (peers.md)"},
    {"cumsum/f32 1x2000000", 10.6, "llama.cpp CUDA (peers.md)"},
    {"scale_mask_softmax/f32 32x2048x2048", 525, "torch.compile (peers.md)"},
    {"embedding/bf16 4096 of 151936x4096", 29.7, "torch.compile (peers.md)"},
    {"gather/bf16 4096 of 151936x4096", 29.7, "torch.compile embedding gather (peers.md)"},
    {"quantized_matmul_ggml/q4_0 1x4096x14336", 14.8, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_0 2x4096x14336", 15.9, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_0 4x4096x14336", 21.3, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_0 8x4096x14336", 34.3, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_0 512x4096x14336", 316, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q8_0 1x4096x14336", 27.4, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q8_0 2x4096x14336", 30.4, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q8_0 4x4096x14336", 31.4, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q8_0 8x4096x14336", 46.4, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q8_0 512x4096x14336", 317, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q5_1 1x4096x14336", 19.1, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q5_1 2x4096x14336", 19.8, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q5_1 4x4096x14336", 24.8, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q5_1 8x4096x14336", 37.7, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q5_1 512x4096x14336", 374, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/iq4_nl 1x4096x14336", 16.9, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/iq4_nl 2x4096x14336", 17.4, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/iq4_nl 4x4096x14336", 22.8, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/iq4_nl 8x4096x14336", 35.8, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/iq4_nl 512x4096x14336", 321, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_K 1x4096x14336", 17.3, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_K 2x4096x14336", 22.9, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_K 4x4096x14336", 36.7, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_K 8x4096x14336", 68.5, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q4_K 512x4096x14336", 358, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q6_K 1x4096x14336", 29.8, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q6_K 2x4096x14336", 31.4, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q6_K 4x4096x14336", 40.6, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q6_K 8x4096x14336", 62.5, "llama.cpp CUDA (peers.md)"},
    {"quantized_matmul_ggml/q6_K 512x4096x14336", 427, "llama.cpp CUDA (peers.md)"},
    {"dense_gemv_bf16/bf16 1x4096x14336", 40.3, "llama.cpp CUDA bf16 (peers.md)"},
    {"dense_gemv_bf16/bf16 2x4096x14336", 46.6, "llama.cpp CUDA bf16 (peers.md)"},
    {"dense_gemv_bf16/bf16 4x4096x14336", 46.8, "llama.cpp CUDA bf16 (peers.md)"},
    {"dense_gemv_bf16/bf16 8x4096x14336", 47.4, "llama.cpp CUDA bf16 (peers.md)"},
    {"dense_gemv_bf16/bf16 1x151936x4096", 447, "cuBLAS bf16 GEMV lm_head (peers.md)"},
    {"dense_mm/bf16 1x4096x14336", 40.3, "llama.cpp CUDA bf16 (peers.md; cuBLAS 56.2)"},
    {"dense_mm/bf16 8x4096x14336", 47.4, "llama.cpp CUDA bf16 (peers.md; cuBLAS 56.7)"},
    {"dense_mm/bf16 512x4096x14336", 84.4, "cuBLAS bf16 GEMM (peers.md; llama.cpp 120.7)"},
    {"quantized_matmul_id_ggml/q4_0 T1 E128 k8 768x2048", 7.1, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q4_0 T8 E128 k8 768x2048", 21.3, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q4_0 T32 E128 k8 768x2048", 142, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q4_0 T512 E128 k8 768x2048", 322, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q8_0 T1 E128 k8 768x2048", 9.1, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q8_0 T8 E128 k8 768x2048", 40.3, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q8_0 T32 E128 k8 768x2048", 131, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q8_0 T512 E128 k8 768x2048", 329, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q4_K T1 E128 k8 768x2048", 8.2, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q4_K T8 E128 k8 768x2048", 26.5, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q4_K T32 E128 k8 768x2048", 143, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q4_K T512 E128 k8 768x2048", 350, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q6_K T1 E128 k8 768x2048", 9.9, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q6_K T8 E128 k8 768x2048", 44.6, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q6_K T32 E128 k8 768x2048", 185, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul_id_ggml/q6_K T512 E128 k8 768x2048", 438, "llama.cpp CUDA MUL_MAT_ID (peers.md)"},
    {"quantized_matmul/4bit g64 1x4096x14336", 14.8, "llama.cpp CUDA q4_0, same 0.5625 B/weight (peers.md)"},
    {"quantized_matmul/4bit g64 2x4096x14336", 15.9, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul/4bit g64 4x4096x14336", 21.3, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul/4bit g64 8x4096x14336", 34.3, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul/4bit g64 512x4096x14336", 316, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul/8bit g64 1x4096x14336", 27.4, "llama.cpp CUDA q8_0, same 1.0625 B/weight (peers.md)"},
    {"quantized_matmul/8bit g64 8x4096x14336", 46.4, "llama.cpp CUDA q8_0 (peers.md)"},
    {"quantized_matmul/8bit g64 512x4096x14336", 317, "llama.cpp CUDA q8_0 (peers.md)"},
    {"quantized_matmul_packed/4bit g64 1x4096x14336", 14.8, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul_packed/4bit g64 2x4096x14336", 15.9, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul_packed/4bit g64 4x4096x14336", 21.3, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul_packed/4bit g64 8x4096x14336", 34.3, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul_packed/4bit g64 512x4096x14336", 316, "llama.cpp CUDA q4_0 (peers.md)"},
    {"quantized_matmul_packed/8bit g64 1x4096x14336", 27.4, "llama.cpp CUDA q8_0 (peers.md)"},
    {"quantized_matmul_packed/8bit g64 8x4096x14336", 46.4, "llama.cpp CUDA q8_0 (peers.md)"},
    {"quantized_matmul_packed/8bit g64 512x4096x14336", 317, "llama.cpp CUDA q8_0 (peers.md)"},
    {"quantized_matmul_packed/6bit g64 1x4096x14336", 29.8, "llama.cpp CUDA q6_K (peers.md)"},
    {"quantized_matmul_packed/6bit g64 8x4096x14336", 62.5, "llama.cpp CUDA q6_K (peers.md)"},
    {"quantized_matmul_packed/6bit g64 512x4096x14336", 427, "llama.cpp CUDA q6_K (peers.md)"},
    {"quantized_matmul_packed/6bit g64 E128 top8 768x2048 1 tok", 9.9, "llama.cpp CUDA MUL_MAT_ID q6_K (peers.md)"},
    {"quantized_matmul_packed/6bit g64 E128 top8 768x2048 8 tok", 44.6, "llama.cpp CUDA MUL_MAT_ID q6_K (peers.md)"},
    {"quantized_matmul_packed/6bit g64 E128 top8 768x2048 32 tok", 185, "llama.cpp CUDA MUL_MAT_ID q6_K (peers.md)"},
    {"quantized_matmul_packed/6bit g64 E128 top8 768x2048 512 tok", 438, "llama.cpp CUDA MUL_MAT_ID q6_K (peers.md)"},
    {"quantized_matmul_packed/4bit g64 E128 top8 768x2048 1 tok", 7.1, "llama.cpp CUDA MUL_MAT_ID q4_0 (peers.md)"},
    {"quantized_matmul_packed/4bit g64 E128 top8 768x2048 8 tok", 21.3, "llama.cpp CUDA MUL_MAT_ID q4_0 (peers.md)"},
    {"quantized_matmul_packed/4bit g64 E128 top8 768x2048 32 tok", 142, "llama.cpp CUDA MUL_MAT_ID q4_0 (peers.md)"},
    {"quantized_matmul_packed/4bit g64 E128 top8 768x2048 512 tok", 322, "llama.cpp CUDA MUL_MAT_ID q4_0 (peers.md)"},
    {"quantized_matmul_packed/8bit g64 E128 top8 768x2048 1 tok", 9.1, "llama.cpp CUDA MUL_MAT_ID q8_0 (peers.md)"},
    {"quantized_matmul_packed/8bit g64 E128 top8 768x2048 8 tok", 40.3, "llama.cpp CUDA MUL_MAT_ID q8_0 (peers.md)"},
    {"quantized_matmul_packed/8bit g64 E128 top8 768x2048 32 tok", 131, "llama.cpp CUDA MUL_MAT_ID q8_0 (peers.md)"},
    {"quantized_matmul_packed/8bit g64 E128 top8 768x2048 512 tok", 329, "llama.cpp CUDA MUL_MAT_ID q8_0 (peers.md)"},
    {"quantized_matmul_id/4bit g64 E128 top8 768x2048 1 tok", 7.1, "llama.cpp CUDA MUL_MAT_ID q4_0 (peers.md)"},
    {"quantized_matmul_id/4bit g64 E128 top8 768x2048 8 tok", 21.3, "llama.cpp CUDA MUL_MAT_ID q4_0 (peers.md)"},
    {"quantized_matmul_id/4bit g64 E128 top8 768x2048 32 tok", 142, "llama.cpp CUDA MUL_MAT_ID q4_0 (peers.md)"},
    {"quantized_matmul_id/4bit g64 E128 top8 768x2048 512 tok", 322, "llama.cpp CUDA MUL_MAT_ID q4_0 (peers.md)"},
    {"quantized_matmul_id/8bit g64 E128 top8 768x2048 1 tok", 9.1, "llama.cpp CUDA MUL_MAT_ID q8_0 (peers.md)"},
    {"quantized_matmul_id/8bit g64 E128 top8 768x2048 8 tok", 40.3, "llama.cpp CUDA MUL_MAT_ID q8_0 (peers.md)"},
    {"quantized_matmul_id/8bit g64 E128 top8 768x2048 32 tok", 131, "llama.cpp CUDA MUL_MAT_ID q8_0 (peers.md)"},
    {"quantized_matmul_id/8bit g64 E128 top8 768x2048 512 tok", 329, "llama.cpp CUDA MUL_MAT_ID q8_0 (peers.md)"},
};

// Whether the peer's figure comes from a captured CUDA graph: ggml-cuda captures test-backend-ops's
// graph of back-to-back copies unless it holds a MUL_MAT_ID of more than one token (its
// graph-compatibility check), which it launches node by node.
inline bool peer_in_cuda_graph(const Peer& p) {
  if (!p.source.starts_with("llama.cpp")) return false;
  if (p.source.find("MUL_MAT_ID") == std::string_view::npos) return true;
  return p.key.find(" T1 ") != std::string_view::npos || p.key.ends_with(" 1 tok");
}

inline const Peer* find_peer(std::string_view key) {
  for (const auto& p : kPeers)
    if (p.key == key && p.us > 0) return &p;
  return nullptr;
}

}  // namespace lmk::bench
