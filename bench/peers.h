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
};

inline const Peer* find_peer(std::string_view key) {
  for (const auto& p : kPeers)
    if (p.key == key && p.us > 0) return &p;
  return nullptr;
}

}  // namespace lmk::bench
