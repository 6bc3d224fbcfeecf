// lmk::Graph: record the ops issued on a stream into a CUDA graph, then replay it with one
// launch. Tensors captured by pointer: replay reads whatever their memory holds at that time,
// so new input data is written into the same buffers before replay().
#pragma once
#include "lmk/device.h"

namespace lmk {

class Graph {
 public:
  Graph() = default;
  Graph(Graph&& o) noexcept;
  Graph& operator=(Graph&& o) noexcept;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph();  // also ends a capture still open (e.g. an op threw inside it), discarding it

  // The stream must be one made with Stream::create (the legacy default stream can't capture).
  void begin_capture(Stream& stream);
  void end_capture();             // instantiates the graph
  void replay(Stream& stream);    // launches the whole graph on stream
  bool ready() const { return exec_ != nullptr; }
  int node_count() const { return nodes_; }

 private:
  void reset() noexcept;
  void* graph_ = nullptr;   // cudaGraph_t
  void* exec_ = nullptr;    // cudaGraphExec_t
  Stream* capturing_ = nullptr;
  int nodes_ = 0;
};

}  // namespace lmk
