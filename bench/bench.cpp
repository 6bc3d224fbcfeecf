#include "bench/bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "bench/peers.h"
#include "lmk/error.h"
#include "lmk/graph.h"
#include "lmk/half.h"
#ifdef LMK_WITH_CUDA
#include <cuda_runtime.h>
#include "cuda/check.h"
#endif

namespace lmk::bench {

std::vector<BenchCase>& bench_cases() {
  static std::vector<BenchCase> cases;
  return cases;
}

Context::Context(Device d, bool q) : device(d), quick(q) {
  device_name = d.is_cpu() ? "cpu" : device_properties(d).name;
  if (d.is_cuda()) {
    stream = Stream::create(d);
    int64_t l2 = device_properties(d).l2_bytes;
    flush_ = Buffer(std::max<int64_t>(2 * l2, 1 << 20), d);
    fill_random(flush_.view(DType::u32, {flush_.bytes() / 4}), 7, 0, 4e9);
  }
  // Ceiling: a large device-to-device copy (host memcpy on the CPU), bytes read + written.
  const int64_t bytes = d.is_cuda() ? (int64_t(1) << 30) : (int64_t(64) << 20);
  Buffer a(bytes, d), b(bytes, d);
  fill_random(a.view(DType::u32, {bytes / 4}), 99, 0, 4e9);
  double us = time_us([&] { copy_bytes(b.data(), d, a.data(), d, bytes, stream); }, false);
  copy_gbps = 2.0 * double(bytes) / (us * 1e3);
}

Context::~Context() = default;

#ifdef LMK_WITH_CUDA
void read_all_cuda(const void* p, int64_t bytes, void* sink, void* stream);  // fill.cu
#endif

// Reads a buffer of twice the L2 (a read, not a memset: a memset leaves L2 full of dirty lines,
// and the timed run then pays for writing up to an L2 of them back to DRAM; H100, 50 MB, about
// 17 us of DRAM time overlapping the run). The last bytes of the buffer hold the sink word.
void Context::flush_l2() {
#ifdef LMK_WITH_CUDA
  if (device.is_cuda())
    read_all_cuda(flush_.data(), flush_.bytes() - 16, static_cast<char*>(flush_.data()) + flush_.bytes() - 16,
                  stream.handle());
#endif
}

#ifdef LMK_WITH_CUDA
namespace {
// Device-event timing on a stream: microseconds per run of fn repeated n times between two events.
class EventTimer {
 public:
  explicit EventTimer(Stream& s) : s_(static_cast<cudaStream_t>(s.handle())) {
    LMK_CUDA_CHECK(cudaEventCreate(&e0_));
    LMK_CUDA_CHECK(cudaEventCreate(&e1_));
  }
  ~EventTimer() {
    cudaEventDestroy(e0_);
    cudaEventDestroy(e1_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  double us_per_run(const std::function<void()>& fn, int n) {
    LMK_CUDA_CHECK(cudaEventRecord(e0_, s_));
    for (int i = 0; i < n; ++i) fn();
    LMK_CUDA_CHECK(cudaEventRecord(e1_, s_));
    LMK_CUDA_CHECK(cudaEventSynchronize(e1_));
    float ms = 0;
    LMK_CUDA_CHECK(cudaEventElapsedTime(&ms, e0_, e1_));
    return double(ms) * 1e3 / n;
  }

 private:
  cudaStream_t s_;
  cudaEvent_t e0_{}, e1_{};
};
}  // namespace
#endif

double Context::time_us(const std::function<void()>& fn, bool flush) {
  const int warmup = 3, runs = quick ? 20 : 50;
  std::vector<double> t;
  if (device.is_cpu()) {
    for (int i = 0; i < 1; ++i) fn();
    for (int i = 0; i < (quick ? 5 : 20); ++i) {
      auto t0 = std::chrono::steady_clock::now();
      fn();
      t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
  } else {
#ifdef LMK_WITH_CUDA
    last_timed_ = fn;
    EventTimer timer(stream);
    for (int i = 0; i < warmup; ++i) fn();
    for (int i = 0; i < runs; ++i) {
      if (flush) flush_l2();
      t.push_back(timer.us_per_run(fn, 1));
    }
#endif
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

double Context::time_b2b_us(const std::function<void()>& fn, double* lo, double* hi) {
  double us = 0;
#ifdef LMK_WITH_CUDA
  if (device.is_cpu()) return 0;
  EventTimer timer(stream);
  const double est = timer.us_per_run(fn, 10);  // also the warm-up
  const int n = int(std::clamp(5000.0 / std::max(est, 0.1), 10.0, 2000.0));
  double t[3] = {timer.us_per_run(fn, n), timer.us_per_run(fn, n), timer.us_per_run(fn, n)};
  std::sort(t, t + 3);
  us = t[1];
  if (lo) *lo = t[0];
  if (hi) *hi = t[2];
#else
  (void)fn, (void)lo, (void)hi;
#endif
  return us;
}

double Context::time_graph_us(const std::function<void()>& fn) {
  double us = 0;
#ifdef LMK_WITH_CUDA
  if (device.is_cpu()) return 0;
  EventTimer timer(stream);
  const double est = timer.us_per_run(fn, 10);
  const int n = int(std::clamp(5000.0 / std::max(est, 0.1), 10.0, 2000.0));
  Graph g;
  try {
    g.begin_capture(stream);
    for (int i = 0; i < n; ++i) fn();
    g.end_capture();
  } catch (const Error&) {
    return 0;  // not capturable (~Graph ends the capture)
  }
  auto replay = [&] { g.replay(stream); };
  timer.us_per_run(replay, 1);  // warm-up (uploads the graph)
  double t[3] = {timer.us_per_run(replay, 1) / n, timer.us_per_run(replay, 1) / n, timer.us_per_run(replay, 1) / n};
  std::sort(t, t + 3);
  us = t[1];
#else
  (void)fn;
#endif
  return us;
}

double Context::compared_us(const Measurement& m) {
  if (m.peer_graph && m.graph_us > 0) return m.graph_us;
  return m.b2b_us > 0 ? m.b2b_us : m.us;
}

void Context::record(const std::string& op, const std::string& name, double us, double bytes, double flops,
                     const char* peer_key) {
  Measurement m;
  m.op = op;
  m.name = name;
  m.us = us;
  m.bytes = bytes;
  m.flops = flops;
  m.gbps = bytes / (us * 1e3);
  m.tflops = flops / (us * 1e6);
  m.pct_ceiling = flops > 0 ? 0 : 100.0 * m.gbps / copy_gbps;
  std::string key = peer_key ? std::string(peer_key) : op + "/" + name;
  bool b2b = flops == 0 && bytes <= kDecodeSizeBytes;
  if (device.is_cuda())
    if (const Peer* p = find_peer(key)) {
      m.peer_us = p->us;
      m.peer = std::string(p->source);
      b2b = b2b || p->source.starts_with("llama.cpp");
      m.peer_graph = peer_in_cuda_graph(*p);
    }
  if (device.is_cuda() && b2b && last_timed_) {
    m.b2b_us = time_b2b_us(last_timed_, &m.b2b_lo, &m.b2b_hi);
    m.graph_us = time_graph_us(last_timed_);
  }
  last_timed_ = nullptr;
  results.push_back(m);
}

Buffer Context::empty(DType t, std::vector<int64_t> shape) { return Buffer(t, shape, device); }

Buffer Context::random(DType t, std::vector<int64_t> shape, double lo, double hi) {
  Buffer b(t, shape, device);
  fill_random(b.tensor(), seed_++, lo, hi);
  return b;
}

#ifndef LMK_WITH_CUDA
void fill_random_cuda(const Tensor&, uint64_t, double, double) {}
#else
void fill_random_cuda(const Tensor& t, uint64_t seed, double lo, double hi);
#endif

void fill_random(const Tensor& t, uint64_t seed, double lo, double hi) {
  if (t.device().is_cuda()) return fill_random_cuda(t, seed, lo, hi);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  const int64_t n = t.numel();
  switch (t.dtype()) {
    case DType::f32: for (int64_t i = 0; i < n; ++i) t.data_as<float>()[i] = float(dist(rng)); break;
    case DType::f16: for (int64_t i = 0; i < n; ++i) t.data_as<uint16_t>()[i] = f32_to_f16_bits(float(dist(rng))); break;
    case DType::bf16: for (int64_t i = 0; i < n; ++i) t.data_as<uint16_t>()[i] = f32_to_bf16_bits(float(dist(rng))); break;
    case DType::i32: for (int64_t i = 0; i < n; ++i) t.data_as<int32_t>()[i] = int32_t(dist(rng)); break;
    case DType::u32: for (int64_t i = 0; i < n; ++i) t.data_as<uint32_t>()[i] = uint32_t(dist(rng)); break;
    default: {
      auto* p = static_cast<unsigned char*>(t.data());
      for (int64_t i = 0, nb = t.nbytes(); i < nb; ++i) p[i] = uint8_t(rng());
    }
  }
}

}  // namespace lmk::bench
