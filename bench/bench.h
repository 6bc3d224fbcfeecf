// Benchmark harness for `lmk bench`: device-event timing (warm-up, median of >= 20 runs, L2
// flushed before each run), the copy-bandwidth ceiling measured in the same run, and each
// case's ratio to the peer figure from ../shared/peers.md where one exists.
//
// Peer method: llama.cpp's figures come from test-backend-ops perf, which repeats the op back to
// back in one graph on the same tensors (launch gaps overlap; inputs that fit in L2 stay there).
// Cases with such a peer are also timed that way (b2b_us) and their speedup is taken against
// that figure; the headline time and % of copy stay the cold, L2-flushed single run. ggml-cuda
// runs that graph as a captured CUDA graph (no host launch cost between the copies) unless it
// holds a multi-token MUL_MAT_ID; so those cases are also timed as the replay of a CUDA graph of
// back-to-back runs (graph_us), and their speedup is taken against that where the peer's graph
// was captured (peer_in_cuda_graph, peers.h).
// Decode-size memory-bound cases (at most kDecodeSizeBytes moved) get b2b_us as well: their cold
// time is mostly launch and the first DRAM trip, and in a model their input comes straight from
// the kernel before them.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "lmk/buffer.h"
#include "lmk/device.h"

namespace lmk::bench {

constexpr double kDecodeSizeBytes = 8 << 20;

struct Measurement {
  std::string op, name;
  double us = 0;          // median time
  double bytes = 0;       // compulsory bytes moved (each input read once, each output written once)
  double flops = 0;
  double gbps = 0, tflops = 0;
  double pct_ceiling = 0; // of copy bandwidth (memory-bound) or of the GEMM rate (compute-bound)
  double b2b_us = 0;      // per run, back to back on the same inputs (the peer's method); 0: not taken
  double b2b_lo = 0, b2b_hi = 0;  // the fastest and slowest of its three batches
  double graph_us = 0;    // per run, back to back inside one replayed CUDA graph; 0: not taken
  bool peer_graph = false;  // the peer was timed inside a CUDA graph: the speedup uses graph_us
  double peer_us = 0;     // 0 when no peer
  std::string peer;       // which peer and where the figure came from
};

class Context {
 public:
  Context(Device d, bool quick);
  ~Context();
  Device device;
  bool quick;
  Stream stream;             // a created stream on CUDA; unused on CPU
  double copy_gbps = 0;      // measured device copy bandwidth (read + write bytes)
  std::string device_name;

  // Median microseconds of fn over >= 20 timed runs after warm-up, L2 flushed before each.
  double time_us(const std::function<void()>& fn, bool flush_l2 = true);
  // Mean microseconds per run of fn repeated back to back (no flush, same inputs): the median of
  // three batches of about 5 ms each, and the fastest and slowest batch (lo, hi).
  double time_b2b_us(const std::function<void()>& fn, double* lo = nullptr, double* hi = nullptr);
  // Mean microseconds per run of fn captured back to back into one CUDA graph (as many runs as
  // about 5 ms), the median of three replays; 0 where fn cannot be captured.
  double time_graph_us(const std::function<void()>& fn);
  // The time a speedup is taken against: graph_us where the peer ran in a CUDA graph, else
  // b2b_us where taken, else the cold time.
  static double compared_us(const Measurement& m);
  // Records a memory-bound (flops == 0) or compute-bound result; peer_key looks up peers.h.
  // A peer measured back to back (llama.cpp) also gets b2b_us, from the last fn timed.
  void record(const std::string& op, const std::string& name, double us, double bytes, double flops = 0,
              const char* peer_key = nullptr);
  // Device buffer of random values (uniform in [lo, hi)) of the given dtype and shape.
  Buffer random(DType t, std::vector<int64_t> shape, double lo = -1, double hi = 1);
  Buffer empty(DType t, std::vector<int64_t> shape);
  std::vector<Measurement> results;

 private:
  void flush_l2();
  Buffer flush_;
  std::function<void()> last_timed_;  // the fn of the last time_us (valid until its case returns)
  uint64_t seed_ = 1234;
};

struct BenchCase {
  std::string op;
  std::string name;
  bool quick = false;   // part of --quick
  bool cpu = false;     // also run on the CPU backend (small shapes)
  std::function<void(Context&)> run;
};
std::vector<BenchCase>& bench_cases();

struct BenchRegistrar {
  explicit BenchRegistrar(void (*add)(std::vector<BenchCase>&)) { add(bench_cases()); }
};
#define LMK_BENCHES(tag)                                                  \
  static void lmk_benches_##tag(std::vector<::lmk::bench::BenchCase>&);    \
  static ::lmk::bench::BenchRegistrar lmk_bench_registrar_##tag(&lmk_benches_##tag); \
  static void lmk_benches_##tag(std::vector<::lmk::bench::BenchCase>& cases)

// Fill a device tensor with uniform random values (CUDA kernel; host loop for the CPU).
void fill_random(const Tensor& t, uint64_t seed, double lo, double hi);

}  // namespace lmk::bench
