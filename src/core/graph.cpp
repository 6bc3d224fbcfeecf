#include "lmk/graph.h"

#include <utility>

#include "lmk/error.h"
#ifdef LMK_WITH_CUDA
#include <cuda_runtime.h>
#include "cuda/check.h"
#endif

namespace lmk {

Graph::Graph(Graph&& o) noexcept
    : graph_(std::exchange(o.graph_, nullptr)), exec_(std::exchange(o.exec_, nullptr)),
      capturing_(std::exchange(o.capturing_, nullptr)), nodes_(std::exchange(o.nodes_, 0)) {}

Graph& Graph::operator=(Graph&& o) noexcept {
  if (this != &o) {
    reset();
    graph_ = std::exchange(o.graph_, nullptr);
    exec_ = std::exchange(o.exec_, nullptr);
    capturing_ = std::exchange(o.capturing_, nullptr);
    nodes_ = std::exchange(o.nodes_, 0);
  }
  return *this;
}

Graph::~Graph() { reset(); }

void Graph::reset() noexcept {
#ifdef LMK_WITH_CUDA
  if (capturing_) {  // a capture left open (an op threw inside it): end it and drop what it recorded
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(static_cast<cudaStream_t>(std::exchange(capturing_, nullptr)->handle()), &g);
    if (g) cudaGraphDestroy(g);
    cudaGetLastError();
  }
  if (exec_) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  if (graph_) cudaGraphDestroy(static_cast<cudaGraph_t>(graph_));
#endif
  exec_ = graph_ = nullptr;
  nodes_ = 0;
}

void Graph::begin_capture(Stream& stream) {
#ifdef LMK_WITH_CUDA
  if (capturing_) LMK_THROW(InvalidArgument, "Graph::begin_capture: a capture is already in progress");
  if (!stream.device().is_cuda() || stream.handle() == nullptr)
    LMK_THROW(InvalidArgument, "Graph::begin_capture: needs a stream made with Stream::create on a CUDA device");
  reset();
  LMK_CUDA_CHECK(cudaStreamBeginCapture(static_cast<cudaStream_t>(stream.handle()), cudaStreamCaptureModeThreadLocal));
  capturing_ = &stream;
#else
  LMK_THROW(Unsupported, "Graph::begin_capture: built without CUDA");
#endif
}

void Graph::end_capture() {
#ifdef LMK_WITH_CUDA
  if (!capturing_) LMK_THROW(InvalidArgument, "Graph::end_capture: no capture in progress");
  cudaGraph_t g = nullptr;
  Stream* s = std::exchange(capturing_, nullptr);
  LMK_CUDA_CHECK(cudaStreamEndCapture(static_cast<cudaStream_t>(s->handle()), &g));
  graph_ = g;
  size_t n = 0;
  LMK_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
  nodes_ = int(n);
  cudaGraphExec_t exec = nullptr;
  LMK_CUDA_CHECK(cudaGraphInstantiate(&exec, g, 0));
  exec_ = exec;
#else
  LMK_THROW(Unsupported, "Graph::end_capture: built without CUDA");
#endif
}

void Graph::replay(Stream& stream) {
#ifdef LMK_WITH_CUDA
  if (!exec_) LMK_THROW(InvalidArgument, "Graph::replay: nothing captured");
  LMK_CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), static_cast<cudaStream_t>(stream.handle())));
#else
  LMK_THROW(Unsupported, "Graph::replay: built without CUDA");
#endif
}

}  // namespace lmk
